#include "issuer/untrusted_text.h"

namespace warden::issuer {

std::string quote_untrusted(std::string_view text, std::size_t max) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  const std::string_view kept = text.substr(0, max);
  for (const char c : kept) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  if (kept.size() < text.size()) out += "…(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace warden::issuer
