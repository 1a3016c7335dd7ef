#include "platform/base/cbor.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

namespace warden::cbor {

Value Value::uint(std::uint64_t v) {
  Value out;
  out.type_ = Type::kUnsigned;
  out.scalar_ = v;
  return out;
}
Value Value::integer(std::int64_t v) {
  if (v >= 0) return uint(static_cast<std::uint64_t>(v));
  return negative(static_cast<std::uint64_t>(-(v + 1)));
}
Value Value::negative(std::uint64_t n) {
  Value out;
  out.type_ = Type::kNegative;
  out.scalar_ = n;
  return out;
}
Value Value::bytes(ByteSpan v) {
  Value out;
  out.type_ = Type::kBytes;
  out.bytes_.assign(v.begin(), v.end());
  return out;
}
Value Value::text(std::string_view v) {
  Value out;
  out.type_ = Type::kText;
  out.text_ = std::string(v);
  return out;
}
Value Value::array(std::vector<Value> items) {
  Value out;
  out.type_ = Type::kArray;
  out.items_ = std::move(items);
  return out;
}
Value Value::map(std::vector<std::pair<Value, Value>> entries) {
  Value out;
  out.type_ = Type::kMap;
  out.items_.reserve(entries.size() * 2);
  for (auto& [k, v] : entries) {
    out.items_.push_back(std::move(k));
    out.items_.push_back(std::move(v));
  }
  return out;
}
Value Value::tag(std::uint64_t tag, Value content) {
  Value out;
  out.type_ = Type::kTag;
  out.scalar_ = tag;
  out.items_.push_back(std::move(content));
  return out;
}
Value Value::boolean(bool v) {
  Value out;
  out.type_ = Type::kBool;
  out.scalar_ = v ? 1 : 0;
  return out;
}
Value Value::null() { return Value(); }
Value Value::undefined() {
  Value out;
  out.type_ = Type::kUndefined;
  return out;
}
Value Value::floating(double v) {
  Value out;
  out.type_ = Type::kFloat;
  out.float_ = v;
  return out;
}

std::optional<std::int64_t> Value::as_int() const {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (type_ == Type::kUnsigned && scalar_ <= kMax) return static_cast<std::int64_t>(scalar_);
  if (type_ == Type::kNegative && scalar_ <= kMax) return -static_cast<std::int64_t>(scalar_) - 1;
  return std::nullopt;
}
std::optional<std::uint64_t> Value::as_uint() const {
  if (type_ == Type::kUnsigned) return scalar_;
  return std::nullopt;
}
std::optional<bool> Value::as_bool() const {
  if (type_ == Type::kBool) return scalar_ != 0;
  return std::nullopt;
}
std::optional<double> Value::as_float() const {
  if (type_ == Type::kFloat) return float_;
  return std::nullopt;
}

const Value* Value::find(std::int64_t key) const {
  for (std::size_t i = 0; i < map_size(); ++i) {
    if (map_key(i).as_int() == key && map_key(i).is_int()) return &map_value(i);
  }
  return nullptr;
}
const Value* Value::find(std::string_view key) const {
  for (std::size_t i = 0; i < map_size(); ++i) {
    const std::string* k = map_key(i).as_text();
    if (k != nullptr && *k == key) return &map_value(i);
  }
  return nullptr;
}

Value& Value::push(Value v) {
  items_.push_back(std::move(v));
  return *this;
}
Value& Value::put(Value key, Value v) {
  items_.push_back(std::move(key));
  items_.push_back(std::move(v));
  return *this;
}

bool Value::operator==(const Value& other) const {
  if (type_ != other.type_) return false;
  switch (type_) {
    case Type::kUnsigned:
    case Type::kNegative:
    case Type::kBool:
      return scalar_ == other.scalar_;
    case Type::kBytes:
      return bytes_ == other.bytes_;
    case Type::kText:
      return text_ == other.text_;
    case Type::kArray:
    case Type::kMap:
      return items_ == other.items_;
    case Type::kTag:
      return scalar_ == other.scalar_ && items_ == other.items_;
    case Type::kFloat:
      return float_ == other.float_ || (std::isnan(float_) && std::isnan(other.float_));
    case Type::kNull:
    case Type::kUndefined:
      return true;
  }
  return false;
}

namespace {

// Receives exactly one streaming-decoder event per cbor_stream_decode call.
struct Event {
  enum class Kind {
    kNone,
    kUnsigned,
    kNegative,
    kBytes,
    kText,
    kArray,
    kMap,
    kBool,
    kNull,
    kUndefined,
    kFloat,
    kUnsupported
  } kind = Kind::kNone;
  std::uint64_t number = 0;
  double real = 0;
  const unsigned char* data = nullptr;
  std::size_t length = 0;
};

Event& ev(void* ctx) { return *static_cast<Event*>(ctx); }
void on_uint8(void* c, std::uint8_t v) { ev(c) = {Event::Kind::kUnsigned, v, 0, nullptr, 0}; }
void on_uint16(void* c, std::uint16_t v) { ev(c) = {Event::Kind::kUnsigned, v, 0, nullptr, 0}; }
void on_uint32(void* c, std::uint32_t v) { ev(c) = {Event::Kind::kUnsigned, v, 0, nullptr, 0}; }
void on_uint64(void* c, std::uint64_t v) { ev(c) = {Event::Kind::kUnsigned, v, 0, nullptr, 0}; }
void on_neg8(void* c, std::uint8_t v) { ev(c) = {Event::Kind::kNegative, v, 0, nullptr, 0}; }
void on_neg16(void* c, std::uint16_t v) { ev(c) = {Event::Kind::kNegative, v, 0, nullptr, 0}; }
void on_neg32(void* c, std::uint32_t v) { ev(c) = {Event::Kind::kNegative, v, 0, nullptr, 0}; }
void on_neg64(void* c, std::uint64_t v) { ev(c) = {Event::Kind::kNegative, v, 0, nullptr, 0}; }
void on_bytes(void* c, cbor_data d, std::size_t n) { ev(c) = {Event::Kind::kBytes, 0, 0, d, n}; }
void on_text(void* c, cbor_data d, std::size_t n) { ev(c) = {Event::Kind::kText, 0, 0, d, n}; }
void on_array(void* c, std::size_t n) { ev(c) = {Event::Kind::kArray, n, 0, nullptr, 0}; }
void on_map(void* c, std::size_t n) { ev(c) = {Event::Kind::kMap, n, 0, nullptr, 0}; }
void on_float2(void* c, float v) { ev(c) = {Event::Kind::kFloat, 0, v, nullptr, 0}; }
void on_float4(void* c, float v) { ev(c) = {Event::Kind::kFloat, 0, v, nullptr, 0}; }
void on_float8(void* c, double v) { ev(c) = {Event::Kind::kFloat, 0, v, nullptr, 0}; }
void on_bool(void* c, bool v) { ev(c) = {Event::Kind::kBool, v ? 1U : 0U, 0, nullptr, 0}; }
void on_null(void* c) { ev(c) = {Event::Kind::kNull, 0, 0, nullptr, 0}; }
void on_undefined(void* c) { ev(c) = {Event::Kind::kUndefined, 0, 0, nullptr, 0}; }
void on_unsupported(void* c) { ev(c) = {Event::Kind::kUnsupported, 0, 0, nullptr, 0}; }
void on_unsupported_tag(void* c, std::uint64_t /*tag*/) { on_unsupported(c); }

cbor_callbacks make_callbacks() {
  cbor_callbacks cb = cbor_empty_callbacks;
  cb.uint8 = on_uint8;
  cb.uint16 = on_uint16;
  cb.uint32 = on_uint32;
  cb.uint64 = on_uint64;
  cb.negint8 = on_neg8;
  cb.negint16 = on_neg16;
  cb.negint32 = on_neg32;
  cb.negint64 = on_neg64;
  cb.byte_string = on_bytes;
  cb.string = on_text;
  cb.array_start = on_array;
  cb.map_start = on_map;
  cb.float2 = on_float2;
  cb.float4 = on_float4;
  cb.float8 = on_float8;
  cb.boolean = on_bool;
  cb.null = on_null;
  cb.undefined = on_undefined;
  cb.byte_string_start = on_unsupported;
  cb.string_start = on_unsupported;
  cb.indef_array_start = on_unsupported;
  cb.indef_map_start = on_unsupported;
  cb.indef_break = on_unsupported;
  cb.tag = on_unsupported_tag;
  return cb;
}

const cbor_callbacks kCallbacks = make_callbacks();

class Decoder {
 public:
  Decoder(ByteSpan data, const Limits& limits) : data_(data), limits_(limits) {}

  Result<Value> run() {
    if (data_.size() > limits_.max_input) {
      return fail(ErrorCode::kLimitExceeded,
                  fmt::format("cbor: input of {} bytes exceeds the limit of {}", data_.size(),
                              limits_.max_input));
    }
    auto value = item(0);
    if (!value) return value;
    if (pos_ != data_.size()) return error("trailing bytes after the data item");
    return value;
  }

 private:
  Error err(ErrorCode code, std::string_view what) const {
    return Error{code, fmt::format("cbor: {} at offset {}", what, pos_), 0, 0};
  }
  tl::unexpected<Error> error(std::string_view what) const {
    return fail(err(ErrorCode::kMalformed, what));
  }

  // Reads the head of the item at pos_ (major type and argument) without consuming it, so that
  // limits are enforced before libcbor sees a declared length.
  Result<std::pair<int, std::uint64_t>> peek_head(std::size_t* head_size) const {
    std::uint8_t initial = data_[pos_];
    int major = initial >> 5;
    int info = initial & 31;
    if (info < 24) {
      *head_size = 1;
      return std::pair{major, static_cast<std::uint64_t>(info)};
    }
    if (info == 31) {
      return fail(err(ErrorCode::kUnsupported, "indefinite-length item refused"));
    }
    if (info > 27) return error("reserved additional information value");
    std::size_t extra = std::size_t{1} << (info - 24);  // 24..27 -> 1, 2, 4, 8 bytes
    if (data_.size() - pos_ < 1 + extra) return error("truncated item head");
    std::uint64_t arg = 0;
    for (std::size_t i = 0; i < extra; ++i) arg = (arg << 8) | data_[pos_ + 1 + i];
    *head_size = 1 + extra;
    return std::pair{major, arg};
  }

  Result<Value> item(std::size_t depth) {
    if (depth > limits_.max_depth) {
      return fail(err(ErrorCode::kLimitExceeded, "nesting deeper than the limit"));
    }
    if (++items_ > limits_.max_items) {
      return fail(err(ErrorCode::kLimitExceeded, "more data items than the limit"));
    }
    if (pos_ >= data_.size()) return error("truncated input");
    std::size_t head_size = 0;
    auto head = peek_head(&head_size);
    if (!head) return fail(head.error());
    auto [major, arg] = *head;
    std::size_t left = data_.size() - pos_ - head_size;
    if ((major == 2 || major == 3) && arg > left) return error("string longer than the input");
    if ((major == 4 || major == 5) && arg > limits_.max_items) {
      return fail(err(ErrorCode::kLimitExceeded, "collection larger than the limit"));
    }
    // libcbor 0.8's streaming decoder rejects one-byte tags 6..20 (COSE_Sign1 is tag 18), so tags
    // are decoded here.
    if (major == 6) {
      pos_ += head_size;
      auto content = item(depth + 1);
      if (!content) return content;
      return Value::tag(arg, std::move(*content));
    }
    Event event;
    cbor_decoder_result r =
        cbor_stream_decode(data_.data() + pos_, data_.size() - pos_, &kCallbacks, &event);
    if (r.status == CBOR_DECODER_NEDATA) return error("truncated input");
    if (r.status != CBOR_DECODER_FINISHED || event.kind == Event::Kind::kNone) {
      return error("malformed data item");
    }
    if (event.kind == Event::Kind::kUnsupported) {
      return fail(err(ErrorCode::kUnsupported, "indefinite-length item refused"));
    }
    pos_ += r.read;
    switch (event.kind) {
      case Event::Kind::kUnsigned:
        return Value::uint(event.number);
      case Event::Kind::kNegative:
        return Value::negative(event.number);
      case Event::Kind::kBytes:
        return Value::bytes(ByteSpan(event.data, event.length));
      case Event::Kind::kText:
        return Value::text(std::string_view(reinterpret_cast<const char*>(event.data),  // NOLINT
                                            event.length));
      case Event::Kind::kBool:
        return Value::boolean(event.number != 0);
      case Event::Kind::kNull:
        return Value::null();
      case Event::Kind::kUndefined:
        return Value::undefined();
      case Event::Kind::kFloat:
        return Value::floating(event.real);
      case Event::Kind::kArray: {
        std::vector<Value> items;
        items.reserve(std::min<std::size_t>(event.number, 64));
        for (std::uint64_t i = 0; i < event.number; ++i) {
          auto child = item(depth + 1);
          if (!child) return child;
          items.push_back(std::move(*child));
        }
        return Value::array(std::move(items));
      }
      case Event::Kind::kMap: {
        Value map = Value::map();
        for (std::uint64_t i = 0; i < event.number; ++i) {
          auto key = item(depth + 1);
          if (!key) return key;
          auto value = item(depth + 1);
          if (!value) return value;
          map.put(std::move(*key), std::move(*value));
        }
        return map;
      }
      default:
        return error("unexpected data item");
    }
  }

  ByteSpan data_;
  const Limits& limits_;
  std::size_t pos_ = 0;
  std::size_t items_ = 0;
};

cbor_item_t* build_uint(std::uint64_t v) {
  if (v <= 0xff) return cbor_build_uint8(static_cast<std::uint8_t>(v));
  if (v <= 0xffff) return cbor_build_uint16(static_cast<std::uint16_t>(v));
  if (v <= 0xffffffff) return cbor_build_uint32(static_cast<std::uint32_t>(v));
  return cbor_build_uint64(v);
}

cbor_item_t* build_negint(std::uint64_t v) {
  if (v <= 0xff) return cbor_build_negint8(static_cast<std::uint8_t>(v));
  if (v <= 0xffff) return cbor_build_negint16(static_cast<std::uint16_t>(v));
  if (v <= 0xffffffff) return cbor_build_negint32(static_cast<std::uint32_t>(v));
  return cbor_build_negint64(v);
}

Item build(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUnsigned:
      return Item(build_uint(*v.as_uint()));
    case Value::Type::kNegative:
      return Item(build_negint(v.raw_argument()));
    case Value::Type::kBytes:
      return Item(cbor_build_bytestring(v.as_bytes()->data(), v.as_bytes()->size()));
    case Value::Type::kText: {
      const std::string& s = *v.as_text();
      return Item(cbor_build_stringn(s.data(), s.size()));
    }
    case Value::Type::kArray: {
      Item array(cbor_new_definite_array(v.items().size()));
      for (const Value& child : v.items()) {
        Item c = build(child);
        if (!cbor_array_push(array.get(), c.get())) std::abort();
      }
      return array;
    }
    case Value::Type::kMap: {
      Item map(cbor_new_definite_map(v.map_size()));
      for (std::size_t i = 0; i < v.map_size(); ++i) {
        Item k = build(v.map_key(i));
        Item val = build(v.map_value(i));
        if (!cbor_map_add(map.get(), cbor_pair{k.get(), val.get()})) std::abort();
      }
      return map;
    }
    case Value::Type::kTag: {
      Item content = build(*v.tag_content());
      return Item(cbor_build_tag(v.tag_number(), content.get()));
    }
    case Value::Type::kBool:
      return Item(cbor_build_bool(*v.as_bool()));
    case Value::Type::kNull:
      return Item(cbor_new_null());
    case Value::Type::kUndefined:
      return Item(cbor_new_undef());
    case Value::Type::kFloat:
      return Item(cbor_build_float8(*v.as_float()));
  }
  std::abort();
}

}  // namespace

Result<Value> decode(ByteSpan data, const Limits& limits) { return Decoder(data, limits).run(); }

Bytes encode(const Value& value) {
  Item item = build(value);
  unsigned char* buffer = nullptr;
  std::size_t buffer_size = 0;
  std::size_t length = cbor_serialize_alloc(item.get(), &buffer, &buffer_size);
  if (length == 0) std::abort();  // only fails on allocation failure
  Bytes out(buffer, buffer + length);
  std::free(buffer);  // NOLINT(cppcoreguidelines-no-malloc): allocated by libcbor
  return out;
}

}  // namespace warden::cbor
