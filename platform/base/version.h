#pragma once

#include <string_view>

namespace warden {
/// The project version ("0.1.0"), as set in the top-level CMakeLists.txt.
std::string_view version();
}  // namespace warden
