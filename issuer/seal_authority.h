#pragma once

#include <filesystem>
#include <memory>
#include <mutex>

#include "attest/token/signer.h"
#include "attest/tpm_policy/authorized_policy.h"

namespace warden::issuer {

/// The sealing authority (docs/sealing.md): a P-256 key whose signature over a PCR policy lets a
/// device's TPM unseal secrets bound to it with TPM2_PolicyAuthorize. Apart from the token
/// signing keys because it never rotates: every sealed blob names this key.
class SealAuthority {
 public:
  /// `seal-authority.pem` (0600) in `dir` (tokens.key_dir), generated on first start.
  static Result<std::unique_ptr<SealAuthority>> open(const std::filesystem::path& dir);
  static Result<std::unique_ptr<SealAuthority>> from_key(std::shared_ptr<EVP_PKEY> key);

  /// TPM2B_PUBLIC of the key, what agents seal to (sent at enrollment).
  [[nodiscard]] const Bytes& public_area() const { return public_area_; }
  /// Signs PolicyPCR(selection, values) for the epoch-0 policyRef.
  Result<attest::tpm_policy::ApprovedPolicy> approve(const PcrSelection& selection,
                                                     const attest::PcrValues& values);

 private:
  SealAuthority(token::EcSigner signer, Bytes public_area)
      : signer_(std::move(signer)), public_area_(std::move(public_area)) {}
  std::mutex mu_;
  token::EcSigner signer_;
  Bytes public_area_;
};

}  // namespace warden::issuer
