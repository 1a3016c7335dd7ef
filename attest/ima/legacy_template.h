#pragma once
// The legacy `ima` template's data (module-internal): what the kernel hashed, which a binary
// list does not carry: digest[20] || path zero-padded to 256 bytes (IMA_EVENT_NAME_LEN_MAX + 1).
#include <array>
#include <cstdint>
#include <string_view>

#include "platform/base/bytes.h"

namespace warden::attest::ima {

inline constexpr std::size_t kLegacyDigestSize = 20;
inline constexpr std::size_t kLegacyNameSize = 256;
using LegacyTemplateData = std::array<std::uint8_t, kLegacyDigestSize + kLegacyNameSize>;

/// Fills `out`; a longer digest or path is cut (the parsers refuse them before).
void legacy_template_data(ByteSpan digest, std::string_view path, LegacyTemplateData& out);

}  // namespace warden::attest::ima
