// The enrollment record (state dir "enrollment": device id and AK blob), read back by wardend at
// start or on a request: garbage gives an error, never a crash; what parses serializes to bytes
// that parse to the same serialization (round trip).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "agent/state_store.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto parsed = warden::agent::parse_enrollment(warden::ByteSpan(data, size));
  if (!parsed) {
    if (parsed.error().message.empty()) std::abort();
    return 0;
  }
  const warden::Bytes once = warden::agent::serialize(*parsed);
  auto again = warden::agent::parse_enrollment(once);
  if (!again || warden::agent::serialize(*again) != once) std::abort();
  return 0;
}
