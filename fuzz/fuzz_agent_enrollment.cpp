// The enrollment record (state dir "enrollment": device id and AK blob), read back by wardend at
// start or on a request.
#include "fuzz/state_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return warden::fuzz::check_state_file(
      data, size, [](warden::ByteSpan b) { return warden::agent::parse_enrollment(b); });
}
