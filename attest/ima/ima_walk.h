#pragma once
// Walking a binary IMA measurement list by entry, on attest/ima's parsing rules (both byte
// orders, the legacy `ima` template as the kernel writes it): what the agent needs to send only
// the entries the issuer has not replayed yet.

#include <cstddef>
#include <cstdint>

#include "attest/ima/ima.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::attest::ima {

/// Byte offset at which entry `index` (0-based) of the binary list `list` starts; list.size()
/// when `index` is the number of entries. kInvalidArgument when the list has fewer entries (it
/// was reset: a reboot); the parser's error when the list is malformed.
Result<std::size_t> entry_offset(ByteSpan list, std::uint64_t index, const Limits& limits = {});

}  // namespace warden::attest::ima
