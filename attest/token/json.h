#pragma once

// Shared Boost.JSON helpers for Warden. Boost.JSON is header-only here: its implementation is
// compiled once, in attest/token/json.cpp, so every target that links warden_attest can include
// <boost/json.hpp> and use these helpers.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "platform/base/error.h"

namespace warden::json {

/// Limits for parsing untrusted JSON.
struct ParseLimits {
  std::size_t max_size = 64 * 1024;
  std::size_t max_depth = 16;
};

/// Parses untrusted JSON text under `limits` (size, nesting depth); never throws.
Result<boost::json::value> parse(std::string_view text, const ParseLimits& limits = {});
/// Parses and requires a top-level object.
Result<boost::json::object> parse_object(std::string_view text, const ParseLimits& limits = {});
/// Compact serialization (members in insertion order, no whitespace).
std::string serialize(const boost::json::value& value);

/// Typed member access; nullopt/nullptr when absent or of another type.
std::optional<std::string_view> get_string(const boost::json::object& obj, std::string_view key);
std::optional<std::int64_t> get_int(const boost::json::object& obj, std::string_view key);
const boost::json::object* get_object(const boost::json::object& obj, std::string_view key);

}  // namespace warden::json
