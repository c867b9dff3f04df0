// What kind of value a setting holds, and when a running pgmux applies a change to it.
#pragma once

#include <cstdint>

namespace pgmux::pooler {

enum class SettingKind : std::uint8_t { integer, number, boolean, text, choice, list };
// What a running pgmux does when RELOAD or SET changes the key.
enum class Applies : std::uint8_t { at_once, after_restart };

}  // namespace pgmux::pooler
