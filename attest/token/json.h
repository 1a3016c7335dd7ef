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

/// Builds a flat JSON object straight into a string: replies are small and fixed in shape, so
/// a DOM (one allocation per member) would cost more than the request's syscalls. Control bytes
/// are written as \u00XX, '"' and '\\' with a backslash, every other byte as it is.
class ObjectWriter {
 public:
  ObjectWriter();
  ObjectWriter& str(std::string_view key, std::string_view value);
  /// null for an empty string (an absent value).
  ObjectWriter& str_or_null(std::string_view key, std::string_view value);
  ObjectWriter& num(std::string_view key, std::int64_t value);
  ObjectWriter& boolean(std::string_view key, bool value);
  /// The object's text; the writer is spent.
  std::string done();

 private:
  void name(std::string_view key);
  void quote(std::string_view value);
  std::string out_;
};

}  // namespace warden::json
