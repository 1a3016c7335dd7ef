#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/error.h"

namespace warden {

using Bytes = std::vector<std::uint8_t>;
using ByteSpan = std::span<const std::uint8_t>;

/// Bounds-checked reader over untrusted bytes. Every read checks the remaining length first, never
/// trusts a length field, and fails with a message naming the field and the offset. `what` names
/// the structure being parsed ("TPMS_ATTEST") and prefixes every error.
class ByteReader {
 public:
  explicit ByteReader(ByteSpan data, std::string_view what = "input") : data_(data), what_(what) {}

  [[nodiscard]] std::size_t offset() const { return offset_; }
  [[nodiscard]] std::size_t remaining() const { return data_.size() - offset_; }
  [[nodiscard]] bool empty() const { return remaining() == 0; }
  [[nodiscard]] ByteSpan rest() const { return data_.subspan(offset_); }

  // Inline: parsers of large lists (IMA, event logs) call these per field.
  Result<std::uint8_t> u8(std::string_view field) { return load<std::uint8_t, false>(field); }
  Result<std::uint16_t> u16be(std::string_view field) { return load<std::uint16_t, true>(field); }
  Result<std::uint32_t> u32be(std::string_view field) { return load<std::uint32_t, true>(field); }
  Result<std::uint64_t> u64be(std::string_view field) { return load<std::uint64_t, true>(field); }
  Result<std::uint16_t> u16le(std::string_view field) { return load<std::uint16_t, false>(field); }
  Result<std::uint32_t> u32le(std::string_view field) { return load<std::uint32_t, false>(field); }
  Result<std::uint64_t> u64le(std::string_view field) { return load<std::uint64_t, false>(field); }
  /// Exactly n bytes, as a view into the input.
  Result<ByteSpan> bytes(std::size_t n, std::string_view field) {
    if (n > remaining()) [[unlikely]] return fail(short_input(n, field));
    ByteSpan v = data_.subspan(offset_, n);
    offset_ += n;
    return v;
  }
  /// A TPM2B: a big-endian u16 size, then that many bytes (size checked against `max`).
  Result<ByteSpan> tpm2b(std::string_view field, std::size_t max = 0xffff);
  Status skip(std::size_t n, std::string_view field);
  /// Fails unless every byte was consumed.
  Status expect_end() const;

  /// An error of kind kMalformed at the current offset: "<what>: <field> at offset N: <detail>".
  [[nodiscard]] Error error(std::string_view field, std::string_view detail) const;

 private:
  [[nodiscard]] Error short_input(std::size_t n, std::string_view field) const;
  template <class T, bool kBigEndian>
  Result<T> load(std::string_view field) {
    if (sizeof(T) > remaining()) [[unlikely]] return fail(short_input(sizeof(T), field));
    T v = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) {
      const std::uint8_t b = data_[offset_ + (kBigEndian ? i : sizeof(T) - 1 - i)];
      v = static_cast<T>((static_cast<std::uint64_t>(v) << 8) | b);
    }
    offset_ += sizeof(T);
    return v;
  }

  ByteSpan data_;
  std::string_view what_;
  std::size_t offset_ = 0;
};

/// Appends big-endian (TPM wire format) and little-endian integers to a byte vector.
class ByteWriter {
 public:
  ByteWriter& u8(std::uint8_t v);
  ByteWriter& u16be(std::uint16_t v);
  ByteWriter& u32be(std::uint32_t v);
  ByteWriter& u64be(std::uint64_t v);
  ByteWriter& u16le(std::uint16_t v);
  ByteWriter& u32le(std::uint32_t v);
  ByteWriter& u64le(std::uint64_t v);
  ByteWriter& bytes(ByteSpan v);
  ByteWriter& bytes(std::string_view v);
  /// u16 big-endian size then the bytes; the caller guarantees size <= 0xffff.
  ByteWriter& tpm2b(ByteSpan v);

  [[nodiscard]] const Bytes& data() const& { return out_; }
  [[nodiscard]] Bytes take() && { return std::move(out_); }

 private:
  Bytes out_;
};

/// Bytes from a string's characters (no terminator).
Bytes to_bytes(std::string_view s);
/// The characters of a byte span as a string.
std::string to_string(ByteSpan b);

}  // namespace warden
