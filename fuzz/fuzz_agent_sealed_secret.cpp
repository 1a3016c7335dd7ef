// A sealed secret (state dir "secrets/<name>.sealed": allow rules and the TPM sealed blob), read
// back by wardend at start or on a request.
#include "fuzz/state_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return warden::fuzz::check_state_file(
      data, size, [](warden::ByteSpan b) { return warden::agent::parse_sealed_secret(b); });
}
