#pragma once
// Untrusted strings in messages and audit records.

#include <cstddef>
#include <string>
#include <string_view>

namespace warden::issuer {

/// An untrusted string as an audit record may hold it: at most `max` bytes, control and
/// non-ASCII bytes as \xNN, in double quotes, with "…(N bytes)" when cut.
std::string quote_untrusted(std::string_view text, std::size_t max = 128);

}  // namespace warden::issuer
