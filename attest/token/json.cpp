// The one translation unit that compiles Boost.JSON's implementation for warden_attest.
#include "attest/token/json.h"

#include <boost/json/src.hpp>

namespace warden::json {

Result<boost::json::value> parse(std::string_view text, const ParseLimits& limits) {
  if (text.size() > limits.max_size) {
    return fail(ErrorCode::kLimitExceeded, "json: input of " + std::to_string(text.size()) +
                                               " bytes exceeds the limit of " +
                                               std::to_string(limits.max_size));
  }
  boost::json::parse_options options;
  options.max_depth = limits.max_depth;
  boost::json::error_code ec;
  boost::json::value value = boost::json::parse(text, ec, {}, options);
  if (ec) {
    return fail(ErrorCode::kMalformed, "json: " + ec.message());
  }
  return value;
}

Result<boost::json::object> parse_object(std::string_view text, const ParseLimits& limits) {
  auto value = parse(text, limits);
  if (!value) return fail(value.error());
  if (!value->is_object()) return fail(ErrorCode::kMalformed, "json: expected an object");
  return std::move(value->as_object());
}

std::string serialize(const boost::json::value& value) { return boost::json::serialize(value); }

std::optional<std::string_view> get_string(const boost::json::object& obj, std::string_view key) {
  const auto* v = obj.if_contains(key);
  if (v == nullptr || !v->is_string()) return std::nullopt;
  return std::string_view(v->as_string());
}

std::optional<std::int64_t> get_int(const boost::json::object& obj, std::string_view key) {
  const auto* v = obj.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->as_int64();
  if (v->is_uint64() && v->as_uint64() <= static_cast<std::uint64_t>(INT64_MAX)) {
    return static_cast<std::int64_t>(v->as_uint64());
  }
  return std::nullopt;
}

const boost::json::object* get_object(const boost::json::object& obj, std::string_view key) {
  const auto* v = obj.if_contains(key);
  return v != nullptr && v->is_object() ? &v->as_object() : nullptr;
}

}  // namespace warden::json
