#include <cstddef>
#include <cstdint>
#include <string_view>

#include "attest/token/jwk.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);  // NOLINT
  if (auto set = warden::token::KeySet::from_json(text)) {
    // Round trip: what we export we must import again, with the same thumbprints.
    auto again = warden::token::KeySet::from_json(set->to_json());
    if (!again || again->keys().size() != set->keys().size()) __builtin_trap();
    for (std::size_t i = 0; i < set->keys().size(); ++i) {
      if (again->keys()[i].thumbprint() != set->keys()[i].thumbprint()) __builtin_trap();
    }
  }
  return 0;
}
