#include "platform/base/bytes.h"

#include <fmt/format.h>

namespace warden {

Error ByteReader::error(std::string_view field, std::string_view detail) const {
  return Error{ErrorCode::kMalformed,
               fmt::format("{}: {} at offset {}: {}", what_, field, offset_, detail), 0, 0};
}

Error ByteReader::short_input(std::size_t n, std::string_view field) const {
  return error(field, fmt::format("needs {} bytes, {} left", n, remaining()));
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
  if (n > remaining()) return fail(short_input(n, field));
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
