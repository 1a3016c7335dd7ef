#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "attest/eventlog/eventlog.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"

// Internal to attest/eventlog: readers of event data shared by the parser, the decoder and the
// quirk table.
namespace warden::attest::eventlog::detail {

inline constexpr std::string_view kSpecIdSignature{"Spec ID Event03\0", 16};
inline constexpr std::string_view kStartupLocality{"StartupLocality\0", 16};

bool starts_with(ByteSpan data, std::string_view prefix);
bool all_zero(ByteSpan data);
/// UTF-16LE ASCII text: at least two units, every odd byte zero (an odd trailing byte allowed).
bool looks_utf16(ByteSpan data);
std::string utf16le_to_text(ByteSpan data);
std::string guid_text(ByteSpan guid16);

/// TCG_EfiSpecIDEvent. With `quirks`, a vendorInfo running past the record may take bytes of
/// `following` (the log after the record); `overrun` receives how many.
Result<SpecIdEvent> parse_spec_id(ByteSpan data, ByteSpan following = {},
                                  const QuirkSet* quirks = nullptr, std::size_t* overrun = nullptr);

}  // namespace warden::attest::eventlog::detail
