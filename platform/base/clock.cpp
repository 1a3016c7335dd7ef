#include "platform/base/clock.h"

#include <cstdlib>

#include <openssl/rand.h>

namespace warden {

void SystemRandom::fill(std::span<std::uint8_t> out) {
  if (out.empty()) return;
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) std::abort();
}

}  // namespace warden
