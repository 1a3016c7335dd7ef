#include "platform/base/bytes.h"

#include <fmt/format.h>

namespace warden {

Error ByteReader::error(std::string_view field, std::string_view detail) const {
  return Error{ErrorCode::kMalformed,
               fmt::format("{}: {} at offset {}: {}", what_, field, offset_, detail), 0, 0};
}

Status ByteReader::need(std::size_t n, std::string_view field) const {
  if (n > remaining()) {
    return fail(error(field, fmt::format("needs {} bytes, {} left", n, remaining())));
  }
  return ok();
}

Result<std::uint8_t> ByteReader::u8(std::string_view field) {
  WARDEN_TRY_STATUS(need(1, field));
  return data_[offset_++];
}

namespace {
template <class T>
T load_be(ByteSpan s) {
  T v = 0;
  for (std::uint8_t b : s) v = static_cast<T>((v << 8) | b);
  return v;
}
template <class T>
T load_le(ByteSpan s) {
  T v = 0;
  for (std::size_t i = s.size(); i > 0; --i) v = static_cast<T>((v << 8) | s[i - 1]);
  return v;
}
}  // namespace

Result<std::uint16_t> ByteReader::u16be(std::string_view field) {
  WARDEN_TRY_STATUS(need(2, field));
  auto v = load_be<std::uint16_t>(data_.subspan(offset_, 2));
  offset_ += 2;
  return v;
}
Result<std::uint32_t> ByteReader::u32be(std::string_view field) {
  WARDEN_TRY_STATUS(need(4, field));
  auto v = load_be<std::uint32_t>(data_.subspan(offset_, 4));
  offset_ += 4;
  return v;
}
Result<std::uint64_t> ByteReader::u64be(std::string_view field) {
  WARDEN_TRY_STATUS(need(8, field));
  auto v = load_be<std::uint64_t>(data_.subspan(offset_, 8));
  offset_ += 8;
  return v;
}
Result<std::uint16_t> ByteReader::u16le(std::string_view field) {
  WARDEN_TRY_STATUS(need(2, field));
  auto v = load_le<std::uint16_t>(data_.subspan(offset_, 2));
  offset_ += 2;
  return v;
}
Result<std::uint32_t> ByteReader::u32le(std::string_view field) {
  WARDEN_TRY_STATUS(need(4, field));
  auto v = load_le<std::uint32_t>(data_.subspan(offset_, 4));
  offset_ += 4;
  return v;
}
Result<std::uint64_t> ByteReader::u64le(std::string_view field) {
  WARDEN_TRY_STATUS(need(8, field));
  auto v = load_le<std::uint64_t>(data_.subspan(offset_, 8));
  offset_ += 8;
  return v;
}

Result<ByteSpan> ByteReader::bytes(std::size_t n, std::string_view field) {
  WARDEN_TRY_STATUS(need(n, field));
  auto v = data_.subspan(offset_, n);
  offset_ += n;
  return v;
}

Result<ByteSpan> ByteReader::tpm2b(std::string_view field, std::size_t max) {
  auto size = u16be(field);
  if (!size) return fail(size.error());
  if (*size > max) {
    return fail(error(field, fmt::format("size {} exceeds the maximum {}", *size, max)));
  }
  return bytes(*size, field);
}

Status ByteReader::skip(std::size_t n, std::string_view field) {
  WARDEN_TRY_STATUS(need(n, field));
  offset_ += n;
  return ok();
}

Status ByteReader::expect_end() const {
  if (remaining() != 0) {
    return fail(error("end", fmt::format("{} trailing bytes", remaining())));
  }
  return ok();
}

ByteWriter& ByteWriter::u8(std::uint8_t v) {
  out_.push_back(v);
  return *this;
}
ByteWriter& ByteWriter::u16be(std::uint16_t v) {
  out_.push_back(static_cast<std::uint8_t>(v >> 8));
  out_.push_back(static_cast<std::uint8_t>(v));
  return *this;
}
ByteWriter& ByteWriter::u32be(std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out_.push_back(static_cast<std::uint8_t>(v >> shift));
  return *this;
}
ByteWriter& ByteWriter::u64be(std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out_.push_back(static_cast<std::uint8_t>(v >> shift));
  return *this;
}
ByteWriter& ByteWriter::u16le(std::uint16_t v) {
  out_.push_back(static_cast<std::uint8_t>(v));
  out_.push_back(static_cast<std::uint8_t>(v >> 8));
  return *this;
}
ByteWriter& ByteWriter::u32le(std::uint32_t v) {
  for (int shift = 0; shift <= 24; shift += 8)
    out_.push_back(static_cast<std::uint8_t>(v >> shift));
  return *this;
}
ByteWriter& ByteWriter::u64le(std::uint64_t v) {
  for (int shift = 0; shift <= 56; shift += 8)
    out_.push_back(static_cast<std::uint8_t>(v >> shift));
  return *this;
}
ByteWriter& ByteWriter::bytes(ByteSpan v) {
  out_.insert(out_.end(), v.begin(), v.end());
  return *this;
}
ByteWriter& ByteWriter::bytes(std::string_view v) {
  out_.insert(out_.end(), v.begin(), v.end());
  return *this;
}
ByteWriter& ByteWriter::tpm2b(ByteSpan v) {
  u16be(static_cast<std::uint16_t>(v.size()));
  return bytes(v);
}

Bytes to_bytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
std::string to_string(ByteSpan b) { return std::string(b.begin(), b.end()); }

}  // namespace warden
