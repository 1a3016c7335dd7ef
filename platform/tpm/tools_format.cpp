#include "platform/tpm/tools_format.h"

#include <algorithm>

namespace warden::tpm {

namespace {
constexpr std::size_t kMaxBanks = 16;       // TPM2_NUM_PCR_BANKS
constexpr std::size_t kDigestsPerList = 8;  // TPML_DIGEST capacity
constexpr std::size_t kDigestBuffer = 64;   // sizeof(TPMU_HA)
}  // namespace

Bytes tpm2_tools_pcrs_file(const PcrSelection& selection, const std::vector<PcrValue>& values) {
  ByteWriter w;
  w.u32le(static_cast<std::uint32_t>(selection.banks.size()));
  for (std::size_t i = 0; i < kMaxBanks; ++i) {
    if (i < selection.banks.size()) {
      const auto& bank = selection.banks[i];
      w.u16le(static_cast<std::uint16_t>(bank.alg)).u8(3);
      for (std::size_t byte = 0; byte < 4; ++byte) {
        std::uint8_t bits = 0;
        for (std::size_t bit = 0; bit < 8; ++bit) {
          std::size_t pcr = byte * 8 + bit;
          if (pcr < kPcrCount && bank.pcrs.test(pcr))
            bits = static_cast<std::uint8_t>(bits | (1U << bit));
        }
        w.u8(bits);
      }
      w.u8(0);  // struct padding
    } else {
      w.u64le(0);
    }
  }
  const std::size_t lists = (values.size() + kDigestsPerList - 1) / kDigestsPerList;
  w.u32le(static_cast<std::uint32_t>(lists));
  for (std::size_t list = 0; list < lists; ++list) {
    const std::size_t first = list * kDigestsPerList;
    const std::size_t count = std::min(kDigestsPerList, values.size() - first);
    w.u32le(static_cast<std::uint32_t>(count));
    for (std::size_t i = 0; i < kDigestsPerList; ++i) {
      Bytes buffer(kDigestBuffer, 0);
      std::uint16_t size = 0;
      if (i < count) {
        const Bytes& d = values[first + i].digest;
        size = static_cast<std::uint16_t>(std::min(d.size(), kDigestBuffer));
        std::copy_n(d.begin(), size, buffer.begin());
      }
      w.u16le(size).bytes(buffer);
    }
  }
  return std::move(w).take();
}

}  // namespace warden::tpm
