// Untrusted Container Event Logs: decode under limits, replay, and round-trip what decodes.
#include <cstdint>
#include <cstdlib>

#include "attest/cel/cel.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto records = warden::attest::cel::decode(warden::ByteSpan(data, size));
  if (!records) return 0;
  warden::attest::PcrValues pcrs;
  pcrs.init_bank(warden::TpmAlg::kSha256);
  if (!warden::attest::cel::replay(*records, pcrs)) std::abort();
  auto again = warden::attest::cel::decode(warden::attest::cel::encode(*records));
  if (!again || *again != *records) std::abort();
  return 0;
}
