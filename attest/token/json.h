#pragma once

// Shared Boost.JSON helpers for Warden. Boost.JSON is header-only here: its implementation is
// compiled once, in attest/token/json.cpp, so every target that links warden_attest can include
// <boost/json.hpp> and use these helpers.

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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

// ---- Request bodies: every member known, every field typed ------------------------------------
// Errors are kMalformed and read "<what>: \"<key>\" must be ..." so that a client is told which
// field to fix.

/// Parses an object whose members are all named in `allowed`; `storage` lets the DOM live in a
/// caller's arena. No size limit: the caller has capped the body.
Result<boost::json::object> parse_object(std::string_view text,
                                         std::initializer_list<std::string_view> allowed,
                                         std::string_view what = "request body",
                                         boost::json::storage_ptr storage = {});

enum class Presence { kRequired, kOptional };
/// A string member; an absent optional one is the empty string.
Result<std::string> read_string(const boost::json::object& obj, std::string_view key,
                                Presence presence, std::string_view what = "request body");
/// A JSON integer in [min, max], checked before any conversion (Boost.JSON's to_number throws
/// for a uint64 above INT64_MAX). `name` is the field's name in the message.
Result<std::int64_t> read_integer(const boost::json::value& value, std::string_view name,
                                  std::int64_t min, std::int64_t max,
                                  std::string_view what = "request body");
/// An optional array of strings (absent: empty).
Result<std::vector<std::string>> read_string_array(const boost::json::object& obj,
                                                   std::string_view key,
                                                   std::string_view what = "request body");

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
