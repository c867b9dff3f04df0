// The settings table seen from outside: lookups for SET and SHOW CONFIG, and the generated
// README table and etc/pgmux.toml sections.
#include <cstdio>

#include "pooler/config/settings.hpp"

namespace pgmux::pooler {

std::string toml_quote(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\u%04x", static_cast<unsigned>(c));
      out += hex;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string toml_list(const std::vector<std::string>& items) {
  std::string out = "[";
  for (const std::string& item : items) out += (out.size() > 1 ? ", " : "") + toml_quote(item);
  return out + "]";
}

std::string toml_number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  std::string out = text;
  if (out.find_first_of(".e") == std::string::npos) out += ".0";
  return out;
}

std::string console_text(std::string_view literal) {
  if (literal.size() < 2 || literal.front() != '"' || literal.back() != '"') {
    return std::string(literal);
  }
  std::string out;
  for (std::size_t i = 1; i + 1 < literal.size(); ++i) {
    if (literal[i] == '\\' && i + 2 < literal.size()) ++i;
    out += literal[i];
  }
  return out;
}

namespace {

template <class S>
void describe(std::string_view section, std::span<const Setting<S>> rows, const S& current,
              std::vector<SettingView>& out) {
  const S defaults{};
  for (const Setting<S>& row : rows) {
    out.push_back({.section = section,
                   .key = row.key,
                   .name = row.name(),
                   .doc = row.doc,
                   .default_doc = row.default_doc,
                   .example = row.example,
                   .kind = row.kind,
                   .applies = row.applies,
                   .per_database = row.per_database,
                   .min = row.min,
                   .max = row.max,
                   .choices = row.choices,
                   .value = row.show(row, current),
                   .default_value = row.show(row, defaults)});
  }
}

// `text` as comment lines of at most `width` columns.
std::string comment(std::string_view text, std::size_t width = 98) {
  std::string out, line = "#";
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find(' ', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view word = text.substr(start, end - start);
    if (line.size() > 1 && line.size() + 1 + word.size() > width) {
      out += line + "\n";
      line = "#";
    }
    line += " ";
    line += word;
    start = end + 1;
  }
  return out + line + "\n";
}

std::string section_header(std::string_view section) {
  if (section == "pgmux")
    return "[pgmux]                          # the process, clients, TLS, authentication\n";
  if (section == "pool")
    return "[pool]                           # defaults for every database and user\n";
  return "[routing]                        # read/write routing; rows marked so may be set per "
         "database\n";
}

// The values a setting takes, from its kind, range and choices.
std::string values_text(const SettingView& s, std::string_view separator) {
  switch (s.kind) {
    case SettingKind::integer:
    case SettingKind::number:
      return std::to_string(s.min) + " to " + std::to_string(s.max);
    case SettingKind::boolean:
      return "true, false";
    case SettingKind::choice: {
      std::string out;
      for (std::string_view c : s.choices) {
        out += (out.empty() ? "" : std::string(separator)) + "`" + std::string(c) + "`";
      }
      return out;
    }
    case SettingKind::list:
      return "list of strings";
    case SettingKind::text:
      return "string";
  }
  return "";
}

std::string doc_with_restart(const SettingView& s) {
  std::string doc(s.doc);
  if (s.applies == Applies::after_restart) doc += "; a change takes effect after a restart";
  if (s.per_database) doc += "; may be set per database";
  return doc;
}

}  // namespace

std::vector<SettingView> describe_settings(const Config& config) {
  std::vector<SettingView> out;
  describe("pgmux", general_settings(), config.general, out);
  describe("pool", pool_settings(), config.pool, out);
  describe("routing", routing_settings(), config.routing, out);
  return out;
}

std::optional<SettingView> find_setting(std::string_view name) {
  for (SettingView& s : describe_settings(Config{})) {
    if (s.name == name || s.key == name) return std::move(s);
  }
  return std::nullopt;
}

std::string settings_markdown() {
  std::string out = "| key | default | values | meaning |\n|---|---|---|---|\n";
  for (const SettingView& s : describe_settings(Config{})) {
    const std::string value =
        s.default_doc.empty() ? "`" + s.default_value + "`" : std::string(s.default_doc);
    out += "| `[" + std::string(s.section) + "] " + std::string(s.key) + "` | " + value + " | " +
           values_text(s, " \\| ") + " | " + doc_with_restart(s) + " |\n";
  }
  return out;
}

std::string settings_toml() {
  std::string out;
  std::string_view section;
  for (const SettingView& s : describe_settings(Config{})) {
    if (s.section != section) {
      section = s.section;
      out += (out.empty() ? "" : "\n") + section_header(section);
    }
    std::string doc = doc_with_restart(s);
    if (!s.default_doc.empty()) doc += " (default: " + std::string(s.default_doc) + ")";
    if (s.kind != SettingKind::text) doc += ". Values: " + values_text(s, ", ");
    out += comment(doc);
    if (s.example.empty()) {
      out += std::string(s.key) + " = " + s.default_value + "\n";
    } else {
      out += "# " + std::string(s.key) + " = " + std::string(s.example) + "\n";
    }
  }
  return out;
}

std::optional<std::string> replace_generated(const std::string& document,
                                             std::string_view begin_marker,
                                             std::string_view end_marker,
                                             const std::string& generated) {
  const auto begin = document.find(begin_marker);
  if (begin == std::string::npos) return std::nullopt;
  const auto body = document.find('\n', begin);
  const auto end = document.find(end_marker, body == std::string::npos ? begin : body);
  if (body == std::string::npos || end == std::string::npos) return std::nullopt;
  return document.substr(0, body + 1) + generated + document.substr(end);
}

}  // namespace pgmux::pooler
