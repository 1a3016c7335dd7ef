#pragma once

#include <cbor.h>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "platform/base/bytes.h"

namespace warden::cbor {

/// Owning pointer for a libcbor item (drops one reference).
struct ItemDeleter {
  void operator()(cbor_item_t* item) const { cbor_decref(&item); }
};
using Item = std::unique_ptr<cbor_item_t, ItemDeleter>;

/// A decoded CBOR data item (RFC 8949). Small and explicit: maps keep their order and may hold
/// any key type; integers keep the full unsigned/negative 64-bit range.
class Value {
 public:
  enum class Type {
    kUnsigned,
    kNegative,
    kBytes,
    kText,
    kArray,
    kMap,
    kTag,
    kBool,
    kNull,
    kUndefined,
    kFloat
  };

  Value() = default;
  static Value uint(std::uint64_t v);
  /// Any int64, encoded as unsigned or negative as CBOR requires.
  static Value integer(std::int64_t v);
  /// Negative integer -1 - n (the raw CBOR argument n).
  static Value negative(std::uint64_t n);
  static Value bytes(ByteSpan v);
  static Value text(std::string_view v);
  static Value array(std::vector<Value> items = {});
  /// A map from key/value pairs, in the given (encoding) order.
  static Value map(std::vector<std::pair<Value, Value>> entries = {});
  static Value tag(std::uint64_t tag, Value content);
  static Value boolean(bool v);
  static Value null();
  static Value undefined();
  static Value floating(double v);

  [[nodiscard]] Type type() const { return type_; }
  [[nodiscard]] bool is_int() const { return type_ == Type::kUnsigned || type_ == Type::kNegative; }
  /// The integer value if it is an integer within int64 range.
  [[nodiscard]] std::optional<std::int64_t> as_int() const;
  [[nodiscard]] std::optional<std::uint64_t> as_uint() const;
  /// The raw CBOR argument: the unsigned value, or n of a negative integer -1 - n.
  [[nodiscard]] std::uint64_t raw_argument() const { return scalar_; }
  [[nodiscard]] const Bytes* as_bytes() const { return type_ == Type::kBytes ? &bytes_ : nullptr; }
  /// For moving a decoded byte string out instead of copying it.
  [[nodiscard]] Bytes* as_bytes() { return type_ == Type::kBytes ? &bytes_ : nullptr; }
  [[nodiscard]] const std::string* as_text() const {
    return type_ == Type::kText ? &text_ : nullptr;
  }
  [[nodiscard]] std::optional<bool> as_bool() const;
  [[nodiscard]] std::optional<double> as_float() const;
  [[nodiscard]] bool is_null() const { return type_ == Type::kNull; }

  /// Array elements (empty unless kArray).
  [[nodiscard]] const std::vector<Value>& items() const { return items_; }
  [[nodiscard]] std::size_t map_size() const { return type_ == Type::kMap ? items_.size() / 2 : 0; }
  [[nodiscard]] const Value& map_key(std::size_t i) const { return items_[2 * i]; }
  [[nodiscard]] const Value& map_value(std::size_t i) const { return items_[2 * i + 1]; }
  /// Map lookups; nullptr when absent or when this is not a map.
  [[nodiscard]] const Value* find(std::int64_t key) const;
  [[nodiscard]] Value* find(std::int64_t key) {
    return const_cast<Value*>(static_cast<const Value&>(*this).find(key));
  }
  [[nodiscard]] const Value* find(std::string_view key) const;
  /// Tag number and content (kTag only).
  [[nodiscard]] std::uint64_t tag_number() const { return type_ == Type::kTag ? scalar_ : 0; }
  [[nodiscard]] const Value* tag_content() const {
    return type_ == Type::kTag && !items_.empty() ? &items_[0] : nullptr;
  }

  /// Appends to an array, or a key/value pair to a map.
  Value& push(Value v);
  Value& put(Value key, Value v);

  bool operator==(const Value& other) const;

 private:
  Type type_ = Type::kNull;
  std::uint64_t scalar_ = 0;  // unsigned value, negative argument, tag number or bool
  double float_ = 0;
  Bytes bytes_;
  std::string text_;
  std::vector<Value> items_;  // array elements; map keys and values interleaved; tag content
};

/// Limits applied while decoding untrusted CBOR. Indefinite-length items are always refused.
struct Limits {
  std::size_t max_input = 64 * 1024;
  std::size_t max_items = 4096;  ///< data items in total, at every depth
  std::size_t max_depth = 16;    ///< nesting of arrays, maps and tags
};

/// Decodes exactly one data item from untrusted bytes with libcbor's streaming decoder under
/// `limits` (never cbor_load: Debian's libcbor 0.8 preallocates from declared lengths). Trailing
/// bytes, indefinite lengths, reserved values and truncation are errors naming the offset.
Result<Value> decode(ByteSpan data, const Limits& limits = {});

/// Deterministic encoding (RFC 8949 section 4.2.1 preferred serialization: shortest integer
/// and length forms; maps in the order they were built) through libcbor.
Bytes encode(const Value& value);

}  // namespace warden::cbor
