// Startup-parameter handling for pooled sessions.
#include "pooler/session/startup_params.hpp"

#include <algorithm>
#include <cctype>

namespace pgmux::pooler {

std::vector<std::string> split_options(std::string_view options) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  for (std::size_t i = 0; i < options.size(); ++i) {
    const char c = options[i];
    if (c == '\\' && i + 1 < options.size()) {
      cur.push_back(options[++i]);
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(cur));
      cur.clear();
      in_word = false;
    } else {
      cur.push_back(c);
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(cur));
  return words;
}

namespace {

// Accepts "name=value"; returns false when there is no '='.
bool add_assignment(std::string_view text, ParamList& out) {
  const auto eq = text.find('=');
  if (eq == std::string_view::npos || eq == 0) return false;
  std::string name(text.substr(0, eq));
  std::replace(name.begin(), name.end(), '-', '_');  // PostgreSQL accepts -c work-mem=…
  out.emplace_back(std::move(name), std::string(text.substr(eq + 1)));
  return true;
}

bool is_guc_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

}  // namespace

StartupSettings collect_startup_settings(const ParamList& startup) {
  StartupSettings out;
  for (const auto& [name, value] : startup) {
    if (name == "user" || name == "database" || name.starts_with("_pq_.")) continue;
    if (name == "replication") {
      if (value != "false" && value != "off" && value != "0") {
        out.error = "replication connections are not supported by pgmux";
        return out;
      }
      continue;
    }
    if (name != "options") {
      out.settings.emplace_back(name, value);
      continue;
    }
    const auto words = split_options(value);
    for (std::size_t i = 0; i < words.size(); ++i) {
      const std::string& w = words[i];
      bool ok = false;
      if (w == "-c" && i + 1 < words.size()) {
        ok = add_assignment(words[++i], out.settings);
      } else if (w.starts_with("-c")) {
        ok = add_assignment(std::string_view(w).substr(2), out.settings);
      } else if (w.starts_with("--")) {
        ok = add_assignment(std::string_view(w).substr(2), out.settings);
      }
      if (!ok) {
        out.error = "unsupported startup option \"" + w + "\" (pgmux accepts -c name=value)";
        return out;
      }
    }
  }
  // Refused at login as PostgreSQL refuses it; a name that passes is also safe to quote into
  // the set_config() calls that apply it on a server.
  for (const auto& [name, value] : out.settings) {
    if (!is_guc_name(name)) {
      out.sqlstate = "42602";
      out.error = "invalid configuration parameter name \"" + name + "\"";
      return out;
    }
  }
  return out;
}

std::string quote_literal(std::string_view value) {
  std::string q = "'";
  for (char c : value) {
    if (c == '\'') q.push_back('\'');
    q.push_back(c);
  }
  q.push_back('\'');
  // A backslash in a standard string is literal; E'' is not needed.
  return q;
}

std::string build_settings_sync(const ParameterMap& wanted, const ParameterMap& applied) {
  std::string sql;
  auto add = [&](const std::string& name, const std::string* value) {
    if (!is_guc_name(name)) return;
    sql += sql.empty() ? "SELECT " : ", ";
    sql += "pg_catalog.set_config(" + quote_literal(name) + ", " +
           (value ? quote_literal(*value) : std::string("NULL")) + ", false)";
  };
  for (const auto& [name, value] : wanted) {
    auto it = applied.find(name);
    if (it == applied.end() || it->second != value) add(name, &value);
  }
  for (const auto& [name, value] : applied) {
    if (!wanted.contains(name)) add(name, nullptr);
  }
  return sql;
}

}  // namespace pgmux::pooler
