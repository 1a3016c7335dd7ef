#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/error.h"
#include "platform/base/openssl.h"

namespace warden {

/// TPM_ALG_ID values of the hash algorithms Warden handles (TPM 2.0 Part 2, 6.3).
enum class TpmAlg : std::uint16_t {
  kSha1 = 0x0004,
  kSha256 = 0x000B,
  kSha384 = 0x000C,
  kSha512 = 0x000D
};

/// "sha1", "sha256", ...
std::string_view hash_name(TpmAlg alg);
std::optional<TpmAlg> hash_from_name(std::string_view name);
std::optional<TpmAlg> hash_from_tpm_id(std::uint16_t id);
ossl::Hash to_ossl(TpmAlg alg);
std::size_t hash_size(TpmAlg alg);

constexpr std::size_t kPcrCount = 24;

/// PCRs of one bank.
struct PcrBank {
  TpmAlg alg = TpmAlg::kSha256;
  std::bitset<kPcrCount> pcrs;
  bool operator==(const PcrBank&) const = default;
};

/// A TPML_PCR_SELECTION: banks in order, PCR indices ascending within a bank. Parsed from and
/// printed as the tpm2-tools syntax "sha256:0,1,2+sha1:10" (ranges "0-7" also accepted).
struct PcrSelection {
  std::vector<PcrBank> banks;

  static Result<PcrSelection> parse(std::string_view text);
  [[nodiscard]] std::string to_string() const;
  [[nodiscard]] bool empty() const;
  bool operator==(const PcrSelection&) const = default;
};

}  // namespace warden
