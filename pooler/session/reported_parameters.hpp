// The ParameterStatus values a client has been told: the login parameters of its pool's
// server, shared by every client of the pool, plus only what differs for this client (its own
// startup settings, values a server reported later). An idle client holds its differences,
// not a copy of the server's dozen-odd parameters.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "pooler/session/parameter_map.hpp"

namespace pgmux::pooler {

class ReportedParameters {
 public:
  ReportedParameters() = default;
  explicit ReportedParameters(std::shared_ptr<const ParameterMap> base) : base_(std::move(base)) {}
  ReportedParameters(std::shared_ptr<const ParameterMap> base, ParameterMap changed)
      : base_(std::move(base)), changed_(std::move(changed)) {}

  // The value the client was told for `name`, or null.
  [[nodiscard]] const std::string* find(std::string_view name) const {
    if (auto it = changed_.find(name); it != changed_.end()) return &it->second;
    if (base_) {
      if (auto it = base_->find(name); it != base_->end()) return &it->second;
    }
    return nullptr;
  }
  // Records that the client was told `value` for `name`.
  void set(std::string_view name, std::string_view value) {
    if (base_) {
      if (auto it = base_->find(name); it != base_->end() && it->second == value) {
        changed_.erase(std::string(name));
        return;
      }
    }
    changed_[std::string(name)] = std::string(value);
  }
  // Every (name, value) the client was told, in name order of the base, then the rest.
  template <class F>
  void for_each(F&& visit) const {
    if (base_) {
      for (const auto& [name, value] : *base_) {
        auto it = changed_.find(name);
        visit(name, it != changed_.end() ? it->second : value);
      }
    }
    for (const auto& [name, value] : changed_) {
      if (!base_ || !base_->contains(name)) visit(name, value);
    }
  }
  // Entries this client holds of its own (SHOW MEM, tests).
  [[nodiscard]] std::size_t own_entries() const { return changed_.size(); }
  [[nodiscard]] const std::shared_ptr<const ParameterMap>& base() const { return base_; }
  [[nodiscard]] const ParameterMap& own() const { return changed_; }

 private:
  std::shared_ptr<const ParameterMap> base_;
  ParameterMap changed_;
};

}  // namespace pgmux::pooler
