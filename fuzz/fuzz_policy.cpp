// Untrusted/hand-written policy TOML: parse never crashes; a parsed policy appraises empty
// evidence without crashing.
#include <cstdint>
#include <string_view>

#include "attest/policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto p = warden::attest::policy::parse_policy(
      std::string_view(reinterpret_cast<const char*>(data), size));
  if (!p) return 0;
  (void)warden::attest::policy::appraise(*p, {});
  return 0;
}
