// Untrusted IMA binary measurement lists: parse under limits; whatever parses must replay, and
// the views the issuer uses must agree with the owning entries.
#include <cstdint>
#include <cstdlib>

#include "attest/ima/ima.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace ima = warden::attest::ima;
  ima::Limits limits;
  limits.max_entries = 10'000;
  const warden::ByteSpan list(data, size);
  auto views = ima::parse_binary_view(list, limits);
  auto entries = ima::parse_binary(list, limits);
  if (static_cast<bool>(views) != static_cast<bool>(entries)) std::abort();
  if (!entries) return 0;
  if (views->size() != entries->size()) std::abort();
  auto r = ima::replay(*entries, ima::initial_state());
  if (!r) std::abort();  // parsed entries always have PCR < 24
  auto rv = ima::replay(*views, ima::initial_state());
  if (!rv || rv->state.pcrs != r->state.pcrs || rv->problems.size() != r->problems.size())
    std::abort();
  if (!entries->empty()) {
    (void)ima::check_boot_aggregate(entries->front(), r->state.pcrs);
    (void)ima::check_boot_aggregate(views->front(), r->state.pcrs);
  }
  return 0;
}
