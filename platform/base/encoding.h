#pragma once

#include <string>
#include <string_view>

#include "platform/base/bytes.h"

namespace warden {

/// Lower-case hex.
std::string hex_encode(ByteSpan data);
/// Accepts upper or lower case, an optional "0x" prefix; rejects odd lengths and non-hex
/// characters.
Result<Bytes> hex_decode(std::string_view text);

/// RFC 4648 base64 with padding.
std::string base64_encode(ByteSpan data);
/// Accepts padded or unpadded standard base64; rejects anything else (no whitespace).
Result<Bytes> base64_decode(std::string_view text);

/// RFC 4648 section 5 base64url without padding (JOSE).
std::string base64url_encode(ByteSpan data);
inline std::string base64url_encode(std::string_view data) {
  return base64url_encode(ByteSpan(reinterpret_cast<const std::uint8_t*>(data.data()),  // NOLINT
                                   data.size()));
}
/// Strict base64url: no padding, no standard-alphabet characters, no non-canonical trailing bits.
Result<Bytes> base64url_decode(std::string_view text);

}  // namespace warden
