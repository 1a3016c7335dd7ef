// Untrusted IMA ASCII measurement lists: parse, rebuild template data, replay.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "attest/ima/ima.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  warden::attest::ima::Limits limits;
  limits.max_entries = 10'000;
  auto entries = warden::attest::ima::parse_ascii(
      std::string_view(reinterpret_cast<const char*>(data), size), limits);
  if (!entries) return 0;
  auto r = warden::attest::ima::replay(*entries, warden::attest::ima::initial_state());
  if (!r) std::abort();
  return 0;
}
