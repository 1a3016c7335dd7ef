#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attest/token/dpop.h"
#include "attest/token/jwt.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);  // NOLINT
  static const warden::token::KeySet keys;
  warden::token::JwtVerifyOptions options;
  (void)warden::token::verify_jwt(text, keys, options);
  if (auto jws = warden::token::decode_jws(text))
    (void)warden::token::claims_from_json(jws->payload);
  warden::token::ReplayCache cache(4, 60);
  (void)warden::token::verify_proof(text, {}, cache);
  return 0;
}
