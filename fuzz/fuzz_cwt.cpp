#include <cstddef>
#include <cstdint>

#include "attest/token/cwt.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  warden::ByteSpan input(data, size);
  static const warden::token::KeySet keys;
  if (auto msg = warden::token::decode_cose_sign1(input)) {
    if (auto payload = warden::cbor::decode(msg->payload, warden::token::kCoseLimits)) {
      (void)warden::token::claims_from_cbor(*payload);
    }
  }
  (void)warden::token::verify_cwt(input, keys, {});
  return 0;
}
