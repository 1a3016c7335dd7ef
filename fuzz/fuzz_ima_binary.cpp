// Untrusted IMA binary measurement lists: parse under limits; whatever parses must replay.
#include <cstdint>
#include <cstdlib>

#include "attest/ima/ima.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  warden::attest::ima::Limits limits;
  limits.max_entries = 10'000;
  auto entries = warden::attest::ima::parse_binary(warden::ByteSpan(data, size), limits);
  if (!entries) return 0;
  auto r = warden::attest::ima::replay(*entries, warden::attest::ima::initial_state());
  if (!r) std::abort();  // parsed entries always have PCR < 24
  if (!entries->empty())
    (void)warden::attest::ima::check_boot_aggregate(entries->front(), r->state.pcrs);
  return 0;
}
