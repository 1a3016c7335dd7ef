#pragma once
// The shared body of the fuzz targets for wardend's state files: garbage gives an error with a
// message, never a crash; what parses serializes to bytes that parse to the same serialization.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "agent/state_store.h"

namespace warden::fuzz {

template <class Parse>
int check_state_file(const std::uint8_t* data, std::size_t size, Parse parse) {
  auto parsed = parse(ByteSpan(data, size));
  if (!parsed) {
    if (parsed.error().message.empty()) std::abort();
    return 0;
  }
  const Bytes once = agent::serialize(*parsed);
  auto again = parse(once);
  if (!again || agent::serialize(*again) != once) std::abort();
  return 0;
}

}  // namespace warden::fuzz
