// Which function calls make a statement a write. PostgreSQL marks functions with side effects
// (or whose result depends on more than their arguments) volatile; pgmux reads the names of
// the functions that are not (provolatile 'i' or 's', with no volatile overload) from pg_proc
// on the primary, so a user function is judged by what its author declared. A function pgmux
// has not seen, including one created after the catalog was read, counts as a write. The
// config's write_functions and read_functions lists override the catalog; a few built-ins
// that are volatile without side effects (random, clock_timestamp, pg_is_in_recovery, …) are
// reads from the start.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace pgmux::router {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using NameSet = std::unordered_set<std::string, StringHash, std::equal_to<>>;

class FunctionCatalog {
 public:
  FunctionCatalog() = default;
  FunctionCatalog(std::vector<std::string> write_functions,
                  std::vector<std::string> read_functions);

  // Replaces what was read from pg_proc: names of functions without a volatile overload.
  void set_side_effect_free(NameSet names) {
    side_effect_free_ = std::move(names);
    loaded_ = true;
  }
  [[nodiscard]] bool loaded() const { return loaded_; }
  [[nodiscard]] std::size_t known() const { return side_effect_free_.size(); }

  // Does calling `name` (unqualified, as the parser folded it) make the statement a write?
  [[nodiscard]] bool is_write(std::string_view name) const;

 private:
  NameSet write_, read_, side_effect_free_;
  bool loaded_ = false;
};

// The pg_proc query whose first column lists side-effect-free function names.
inline constexpr std::string_view kSideEffectFreeFunctionsQuery =
    "SELECT proname, '' FROM pg_catalog.pg_proc GROUP BY proname "
    "HAVING bool_and(provolatile <> 'v')";

}  // namespace pgmux::router
