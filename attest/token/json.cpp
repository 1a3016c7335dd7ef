// The one translation unit that compiles Boost.JSON's implementation for warden_attest.
#include "attest/token/json.h"

#include <array>
#include <charconv>
#include <cstring>

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

namespace {

std::string quoted(std::string_view key) { return "\"" + std::string(key) + "\""; }

}  // namespace

Result<boost::json::object> parse_object(std::string_view text,
                                         std::initializer_list<std::string_view> allowed,
                                         std::string_view what, boost::json::storage_ptr storage) {
  boost::json::error_code ec;
  boost::json::value v = boost::json::parse(text, ec, std::move(storage));
  if (ec) return fail(ErrorCode::kMalformed, std::string(what) + ": invalid JSON: " + ec.message());
  if (!v.is_object()) {
    return fail(ErrorCode::kMalformed, std::string(what) + ": expected a JSON object");
  }
  for (const auto& kv : v.as_object()) {
    bool known = false;
    for (auto k : allowed) known = known || kv.key() == k;
    if (!known) {
      return fail(ErrorCode::kMalformed, std::string(what) + ": unknown field " + quoted(kv.key()));
    }
  }
  return std::move(v.as_object());
}

Result<std::string> read_string(const boost::json::object& obj, std::string_view key,
                                Presence presence, std::string_view what) {
  const auto* v = obj.if_contains(key);
  if (v == nullptr) {
    if (presence == Presence::kRequired) {
      return fail(ErrorCode::kMalformed, std::string(what) + ": " + quoted(key) + " is required");
    }
    return std::string();
  }
  if (!v->is_string()) {
    return fail(ErrorCode::kMalformed,
                std::string(what) + ": " + quoted(key) + " must be a string");
  }
  return std::string(v->as_string());
}

Result<std::int64_t> read_integer(const boost::json::value& v, std::string_view name,
                                  std::int64_t min, std::int64_t max, std::string_view what) {
  const auto range = [&] {
    return fail(ErrorCode::kMalformed, std::string(what) + ": " + quoted(name) +
                                           " must be an integer in " + std::to_string(min) + ".." +
                                           std::to_string(max));
  };
  if (v.is_uint64()) {
    if (max < 0 || v.get_uint64() > static_cast<std::uint64_t>(max)) return range();
    return static_cast<std::int64_t>(v.get_uint64());
  }
  if (!v.is_int64()) return range();
  if (v.get_int64() < min || v.get_int64() > max) return range();
  return v.get_int64();
}

Result<std::vector<std::string>> read_string_array(const boost::json::object& obj,
                                                   std::string_view key, std::string_view what) {
  std::vector<std::string> out;
  const auto* v = obj.if_contains(key);
  if (v == nullptr) return out;
  const auto not_strings = [&] {
    return fail(ErrorCode::kMalformed,
                std::string(what) + ": " + quoted(key) + " must be an array of strings");
  };
  if (!v->is_array()) return not_strings();
  for (const auto& s : v->as_array()) {
    if (!s.is_string()) return not_strings();
    out.emplace_back(s.as_string());
  }
  return out;
}

namespace {

/// Whether any of the eight bytes is a control byte, '"' or '\\' (exact: the classic
/// has-less-than and has-zero-byte tests, which never miss a byte).
bool needs_escape(std::uint64_t w) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
  const auto has_zero = [](std::uint64_t x) { return (x - kOnes) & ~x & kHigh; };
  const std::uint64_t below_space = (w - kOnes * 0x20) & ~w & kHigh;
  return (below_space | has_zero(w ^ (kOnes * '"')) | has_zero(w ^ (kOnes * '\\'))) != 0;
}

}  // namespace

ObjectWriter::ObjectWriter() {
  out_.reserve(256);
  out_ += '{';
}

ObjectWriter& ObjectWriter::str(std::string_view key, std::string_view value) {
  name(key);
  quote(value);
  return *this;
}

ObjectWriter& ObjectWriter::str_or_null(std::string_view key, std::string_view value) {
  if (!value.empty()) return str(key, value);
  name(key);
  out_ += "null";
  return *this;
}

ObjectWriter& ObjectWriter::num(std::string_view key, std::int64_t value) {
  name(key);
  std::array<char, 24> buf{};
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out_.append(buf.data(), r.ptr);
  return *this;
}

ObjectWriter& ObjectWriter::boolean(std::string_view key, bool value) {
  name(key);
  out_ += value ? "true" : "false";
  return *this;
}

std::string ObjectWriter::done() {
  out_ += '}';
  return std::move(out_);
}

void ObjectWriter::name(std::string_view key) {
  if (out_.size() > 1) out_ += ',';
  quote(key);
  out_ += ':';
}

void ObjectWriter::quote(std::string_view v) {
  out_.reserve(out_.size() + v.size() + 2);
  out_ += '"';
  std::size_t clean = 0;  // start of the run of bytes that need no escape
  std::size_t i = 0;
  while (i < v.size()) {
    // Tokens and proofs are ~1 KB of base64url: skip clean runs eight bytes at a time.
    if (i + 8 <= v.size()) {
      std::uint64_t word = 0;
      std::memcpy(&word, v.data() + i, sizeof(word));
      if (!needs_escape(word)) {
        i += 8;
        continue;
      }
    }
    const auto u = static_cast<unsigned char>(v[i]);
    if (u >= 0x20 && u != '"' && u != '\\') {
      ++i;
      continue;
    }
    out_.append(v.data() + clean, i - clean);
    clean = i + 1;
    if (u >= 0x20) {
      out_ += '\\';
      out_ += v[i];
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out_ += "\\u00";
      out_ += kHex[u >> 4];
      out_ += kHex[u & 0xF];
    }
    ++i;
  }
  out_.append(v.data() + clean, v.size() - clean);
  out_ += '"';
}

}  // namespace warden::json
