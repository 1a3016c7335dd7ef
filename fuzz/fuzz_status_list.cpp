#include <cstddef>
#include <cstdint>

#include "attest/token/status_list.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  unsigned bits = 1U << (data[0] % 4);
  auto list = warden::token::StatusList::from_compressed(bits, warden::ByteSpan(data + 1, size - 1),
                                                         1 << 20);
  if (list && list->size() > 0) {
    auto v = list->get(list->size() - 1);
    if (!v) __builtin_trap();
    auto z = list->compress();
    if (!z) __builtin_trap();
    auto again = warden::token::StatusList::from_compressed(bits, *z, 1 << 20);
    if (!again || again->bytes() != list->bytes()) __builtin_trap();
  }
  return 0;
}
