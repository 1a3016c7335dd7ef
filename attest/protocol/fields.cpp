#include "attest/protocol/fields.h"

#include <algorithm>
#include <set>

namespace warden::protocol::detail {

std::string_view type_name(const cbor::Value& value) {
  switch (value.type()) {
    case cbor::Value::Type::kUnsigned:
      return "unsigned integer";
    case cbor::Value::Type::kNegative:
      return "negative integer";
    case cbor::Value::Type::kBytes:
      return "bytes";
    case cbor::Value::Type::kText:
      return "text";
    case cbor::Value::Type::kArray:
      return "array";
    case cbor::Value::Type::kMap:
      return "map";
    case cbor::Value::Type::kTag:
      return "tag";
    case cbor::Value::Type::kBool:
      return "bool";
    case cbor::Value::Type::kNull:
      return "null";
    case cbor::Value::Type::kUndefined:
      return "undefined";
    case cbor::Value::Type::kFloat:
      return "float";
  }
  return "unknown";
}

Result<cbor::Value> decode_body(ByteSpan data, const cbor::Limits& limits, std::string_view what) {
  if (data.size() > limits.max_input) {
    return fail(ErrorCode::kLimitExceeded,
                std::string(what) + ": body of " + std::to_string(data.size()) +
                    " bytes exceeds the limit of " + std::to_string(limits.max_input));
  }
  auto value = cbor::decode(data, limits);
  if (!value) return fail(value.error().context(what));
  return value;
}

Result<MapReader> MapReader::open(const cbor::Value& value, std::string_view what,
                                  std::string prefix, std::span<const Field> fields) {
  MapReader reader(&value, std::string(what), std::move(prefix), fields);
  if (value.type() != cbor::Value::Type::kMap) {
    std::string label = reader.prefix_.empty()
                            ? std::string("body")
                            : reader.prefix_.substr(0, reader.prefix_.size() - 1);
    return fail(reader.type_error(label, "map", value));
  }
  std::set<std::int64_t> seen;
  for (std::size_t i = 0; i < value.map_size(); ++i) {
    const cbor::Value& key = value.map_key(i);
    auto k = key.as_int();
    if (!k) {
      return fail(ErrorCode::kMalformed,
                  reader.what_ + ": " + (reader.prefix_.empty() ? "map" : reader.prefix_) +
                      " key: expected integer, found " + std::string(type_name(key)));
    }
    if (!seen.insert(*k).second) {
      return fail(reader.error(ErrorCode::kMalformed, reader.field_name(*k), "duplicate key"));
    }
    if (*k < 0) continue;  // extension space, ignored
    bool known =
        std::any_of(fields.begin(), fields.end(), [&](const Field& f) { return f.key == *k; });
    if (!known) {
      return fail(ErrorCode::kMalformed,
                  reader.what_ + ": unknown field " + reader.prefix_ + std::to_string(*k));
    }
  }
  return reader;
}

Result<MapReader> MapReader::open_field(const MapReader& parent, std::int64_t key,
                                        const cbor::Value& value, std::span<const Field> fields) {
  return open(value, parent.what_, parent.field_name(key) + ".", fields);
}

Result<MapReader> MapReader::open(cbor::Value& value, std::string_view what, std::string prefix,
                                  std::span<const Field> fields) {
  auto reader = open(static_cast<const cbor::Value&>(value), what, std::move(prefix), fields);
  if (reader) reader->owned_ = &value;
  return reader;
}

Result<MapReader> MapReader::open_field(const MapReader& parent, std::int64_t key,
                                        cbor::Value& value, std::span<const Field> fields) {
  return open(value, parent.what_, parent.field_name(key) + ".", fields);
}

std::string MapReader::field_name(std::int64_t key) const {
  for (const Field& f : fields_) {
    if (f.key == key) return prefix_ + std::string(f.name);
  }
  return prefix_ + std::to_string(key);
}

Error MapReader::error(ErrorCode code, const std::string& label, std::string_view message) const {
  return Error{code, what_ + ": field " + label + ": " + std::string(message), 0, 0};
}

Error MapReader::type_error(const std::string& label, std::string_view expected,
                            const cbor::Value& found) const {
  return error(ErrorCode::kMalformed, label,
               "expected " + std::string(expected) + ", found " + std::string(type_name(found)));
}

Result<const cbor::Value*> MapReader::required(std::int64_t key) const {
  const cbor::Value* v = get(key);
  if (v == nullptr) {
    return fail(ErrorCode::kMalformed, what_ + ": missing required field " + field_name(key));
  }
  return v;
}

Status MapReader::check_bytes(const cbor::Value& v, const std::string& label,
                              std::size_t max_size) const {
  const Bytes* b = v.as_bytes();
  if (b == nullptr) return fail(type_error(label, "bytes", v));
  if (b->size() > max_size) {
    return fail(error(
        ErrorCode::kLimitExceeded, label,
        std::to_string(b->size()) + " bytes exceeds the limit of " + std::to_string(max_size)));
  }
  return ok();
}

Result<Bytes> MapReader::bytes_value(const cbor::Value& v, const std::string& label,
                                     std::size_t max_size) const {
  WARDEN_TRY_STATUS(check_bytes(v, label, max_size));
  return *v.as_bytes();
}

Result<std::string> MapReader::text_value(const cbor::Value& v, const std::string& label,
                                          std::size_t max_size) const {
  const std::string* t = v.as_text();
  if (t == nullptr) return fail(type_error(label, "text", v));
  if (t->size() > max_size) {
    return fail(error(ErrorCode::kLimitExceeded, label,
                      std::to_string(t->size()) + " bytes of text exceeds the limit of " +
                          std::to_string(max_size)));
  }
  return *t;
}

Result<Bytes> MapReader::bytes(std::int64_t key, std::size_t max_size) const {
  auto v = required(key);
  if (!v) return fail(v.error());
  return bytes_value(**v, field_name(key), max_size);
}

Result<Bytes> MapReader::take_bytes(std::int64_t key, std::size_t max_size) const {
  cbor::Value* v = get_owned(key);
  if (v == nullptr) return bytes(key, max_size);
  WARDEN_TRY_STATUS(check_bytes(*v, field_name(key), max_size));
  return std::move(*v->as_bytes());
}

Result<std::optional<Bytes>> MapReader::opt_bytes(std::int64_t key, std::size_t max_size) const {
  const cbor::Value* v = get(key);
  if (v == nullptr) return std::optional<Bytes>();
  auto b = bytes_value(*v, field_name(key), max_size);
  if (!b) return fail(b.error());
  return std::optional<Bytes>(std::move(*b));
}

Result<std::string> MapReader::text(std::int64_t key, std::size_t max_size) const {
  auto v = required(key);
  if (!v) return fail(v.error());
  return text_value(**v, field_name(key), max_size);
}

Result<std::optional<std::string>> MapReader::opt_text(std::int64_t key,
                                                       std::size_t max_size) const {
  const cbor::Value* v = get(key);
  if (v == nullptr) return std::optional<std::string>();
  auto t = text_value(*v, field_name(key), max_size);
  if (!t) return fail(t.error());
  return std::optional<std::string>(std::move(*t));
}

Result<std::optional<std::uint64_t>> MapReader::opt_uint(std::int64_t key,
                                                         std::uint64_t max_value) const {
  const cbor::Value* v = get(key);
  if (v == nullptr) return std::optional<std::uint64_t>();
  if (v->type() != cbor::Value::Type::kUnsigned) {
    return fail(type_error(field_name(key), "unsigned integer", *v));
  }
  std::uint64_t n = v->raw_argument();
  if (n > max_value) {
    return fail(error(
        ErrorCode::kLimitExceeded, field_name(key),
        "value " + std::to_string(n) + " exceeds the maximum of " + std::to_string(max_value)));
  }
  return std::optional<std::uint64_t>(n);
}

Result<std::uint64_t> MapReader::uint(std::int64_t key, std::uint64_t max_value) const {
  auto present = required(key);
  if (!present) return fail(present.error());
  auto v = opt_uint(key, max_value);
  if (!v) return fail(v.error());
  return **v;
}

Result<const cbor::Value*> MapReader::array(std::int64_t key, std::size_t max_items,
                                            bool is_required) const {
  const cbor::Value* v = get(key);
  if (v == nullptr) {
    if (is_required) return required(key);
    return v;
  }
  if (v->type() != cbor::Value::Type::kArray) return fail(type_error(field_name(key), "array", *v));
  if (v->items().size() > max_items) {
    return fail(error(ErrorCode::kLimitExceeded, field_name(key),
                      std::to_string(v->items().size()) + " elements exceeds the limit of " +
                          std::to_string(max_items)));
  }
  return v;
}

}  // namespace warden::protocol::detail
