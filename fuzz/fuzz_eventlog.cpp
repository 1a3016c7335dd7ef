// Untrusted firmware event logs: strict and best-effort parse, replay, digest checks and decoding
// must never crash; a strict parse that succeeds must agree with the best-effort one.
#include <cstdint>
#include <cstdlib>

#include "attest/eventlog/eventlog.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace el = warden::attest::eventlog;
  const warden::ByteSpan in(data, size);
  auto strict = el::parse(in);
  auto lenient = el::parse(in, el::ParseOptions{.best_effort = true, .max_events = 4096});
  if (strict && lenient && strict->events.size() != lenient->events.size() &&
      strict->events.size() <= 4096)
    std::abort();
  if (!lenient) return 0;
  (void)el::replay(*lenient);
  (void)el::check_digests(*lenient);
  // Without the workarounds too: each must only ever relax a check.
  (void)el::replay(*lenient, el::QuirkSet::none());
  if (el::check_event_digests(*lenient, el::QuirkSet::none()).mismatches.size() <
      el::check_digests(*lenient).size())
    std::abort();
  (void)el::secure_boot_enabled(*lenient);
  for (const auto& e : lenient->events) (void)el::decode(e);
  (void)el::device_path_to_text(in);
  (void)el::parse_uefi_variable(in);
  return 0;
}
