#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/pcr_selection.h"

namespace warden::attest {

/// PCR values of one or more banks, as replayed from logs or read from a TPM.
class PcrValues {
 public:
  /// Adds `alg` with all 24 PCRs zero (an existing bank is reset).
  void init_bank(TpmAlg alg);
  [[nodiscard]] bool has_bank(TpmAlg alg) const;
  [[nodiscard]] std::vector<TpmAlg> banks() const;
  /// The value of PCR `index` in bank `alg`; nullptr if the bank is absent or index >= 24.
  [[nodiscard]] const Bytes* get(TpmAlg alg, unsigned index) const;
  /// Sets a PCR (e.g. StartupLocality's initial PCR0); `value` must be the bank's digest size.
  Status set(TpmAlg alg, unsigned index, ByteSpan value);
  /// PCR[index] = H(PCR[index] || digest) in bank `alg` (TPM 2.0 Part 3, TPM2_PCR_Extend).
  Status extend(TpmAlg alg, unsigned index, ByteSpan digest);

  bool operator==(const PcrValues&) const = default;

 private:
  struct Bank {
    TpmAlg alg;
    std::array<Bytes, kPcrCount> pcrs;
    bool operator==(const Bank&) const = default;
  };
  Bank* find(TpmAlg alg);
  [[nodiscard]] const Bank* find(TpmAlg alg) const;
  std::vector<Bank> banks_;
};

/// The digest a TPM2_Quote signs over its PCRs: H(selected values concatenated, banks in
/// selection order, indices ascending), H being the signing scheme's hash (TPM 2.0 Part 3, 18.4).
/// Fails when a selected bank is missing from `values`.
Result<Bytes> pcr_composite_digest(const PcrSelection& selection, const PcrValues& values,
                                   ossl::Hash hash);

/// Text in tpm2_pcrread's layout: "sha256:" then "  0 : 0x<HEX>" per PCR, for the selected PCRs
/// (all 24 of every bank when `selection` is null).
std::string format_pcrs(const PcrValues& values, const PcrSelection* selection = nullptr);

}  // namespace warden::attest
