// Untrusted CBOR: decode under limits; anything that decodes must re-encode and decode to the
// same value (round-trip invariant).
#include <cstdint>
#include <cstdlib>

#include "platform/base/cbor.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto value = warden::cbor::decode(warden::ByteSpan(data, size));
  if (!value) return 0;
  warden::Bytes again = warden::cbor::encode(*value);
  auto second = warden::cbor::decode(again);
  if (!second || !(*second == *value)) std::abort();
  return 0;
}
