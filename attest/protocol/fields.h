#pragma once

// Internal to attest/protocol: strict reading of integer-keyed CBOR maps with error messages
// that name the message and the field.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "platform/base/bytes.h"
#include "platform/base/cbor.h"
#include "platform/base/error.h"

namespace warden::protocol::detail {

struct Field {
  std::int64_t key;
  std::string_view name;
};

/// "bytes", "text", "unsigned integer", ...
std::string_view type_name(const cbor::Value& value);

/// Decodes one message body under `limits`, prefixing errors with `what`.
Result<cbor::Value> decode_body(ByteSpan data, const cbor::Limits& limits, std::string_view what);

class MapReader {
 public:
  /// Checks that `value` is a map whose keys are integers, unique, and either negative (ignored
  /// extensions) or listed in `fields`. `prefix` ("quote.") is prepended to field names.
  static Result<MapReader> open(const cbor::Value& value, std::string_view what, std::string prefix,
                                std::span<const Field> fields);
  static Result<MapReader> open_field(const MapReader& parent, std::int64_t key,
                                      const cbor::Value& value, std::span<const Field> fields);
  /// The same over a value the caller owns and discards after decoding: take_bytes() then moves
  /// byte strings out of it instead of copying them.
  static Result<MapReader> open(cbor::Value& value, std::string_view what, std::string prefix,
                                std::span<const Field> fields);
  static Result<MapReader> open_field(const MapReader& parent, std::int64_t key, cbor::Value& value,
                                      std::span<const Field> fields);

  /// nullptr when absent.
  [[nodiscard]] const cbor::Value* get(std::int64_t key) const { return map_->find(key); }
  /// nullptr when absent or when the reader was opened over a const value.
  [[nodiscard]] cbor::Value* get_owned(std::int64_t key) const {
    return owned_ == nullptr ? nullptr : owned_->find(key);
  }
  Result<const cbor::Value*> required(std::int64_t key) const;

  Result<Bytes> bytes(std::int64_t key, std::size_t max_size) const;
  /// bytes(), moved out of the value when the reader owns it (the field reads empty afterwards).
  Result<Bytes> take_bytes(std::int64_t key, std::size_t max_size) const;
  Result<std::optional<Bytes>> opt_bytes(std::int64_t key, std::size_t max_size) const;
  Result<std::string> text(std::int64_t key, std::size_t max_size) const;
  Result<std::optional<std::string>> opt_text(std::int64_t key, std::size_t max_size) const;
  Result<std::uint64_t> uint(std::int64_t key, std::uint64_t max_value) const;
  Result<std::optional<std::uint64_t>> opt_uint(std::int64_t key, std::uint64_t max_value) const;
  /// The array at `key` (nullptr if absent and !required) with at most `max_items` elements.
  Result<const cbor::Value*> array(std::int64_t key, std::size_t max_items, bool required) const;

  /// Checks the type/size of an array element or any value, naming `label` ("scopes[3]").
  Result<std::string> text_value(const cbor::Value& v, const std::string& label,
                                 std::size_t max_size) const;
  Result<Bytes> bytes_value(const cbor::Value& v, const std::string& label,
                            std::size_t max_size) const;

  [[nodiscard]] std::string field_name(std::int64_t key) const;
  [[nodiscard]] const std::string& what() const { return what_; }
  [[nodiscard]] const std::string& prefix() const { return prefix_; }
  [[nodiscard]] Error type_error(const std::string& label, std::string_view expected,
                                 const cbor::Value& found) const;
  [[nodiscard]] Error error(ErrorCode code, const std::string& label,
                            std::string_view message) const;

 private:
  Status check_bytes(const cbor::Value& v, const std::string& label, std::size_t max_size) const;
  MapReader(const cbor::Value* map, std::string what, std::string prefix,
            std::span<const Field> fields)
      : map_(map), what_(std::move(what)), prefix_(std::move(prefix)), fields_(fields) {}

  const cbor::Value* map_;
  cbor::Value* owned_ = nullptr;  ///< map_, when opened over a value the caller discards
  std::string what_;
  std::string prefix_;
  std::span<const Field> fields_;
};

/// Builds an integer-keyed map in key order (callers add keys ascending).
class MapWriter {
 public:
  MapWriter& put(std::int64_t key, cbor::Value value) {
    map_.put(cbor::Value::integer(key), std::move(value));
    return *this;
  }
  MapWriter& bytes(std::int64_t key, ByteSpan v) { return put(key, cbor::Value::bytes(v)); }
  MapWriter& text(std::int64_t key, std::string_view v) { return put(key, cbor::Value::text(v)); }
  MapWriter& uint(std::int64_t key, std::uint64_t v) { return put(key, cbor::Value::uint(v)); }
  cbor::Value take() { return std::move(map_); }

 private:
  cbor::Value map_ = cbor::Value::map();
};

}  // namespace warden::protocol::detail
