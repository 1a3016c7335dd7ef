#pragma once
// The keys that sign the device's proofs of possession (docs: "Proof of possession"):
// a software P-256 session key (default) or the TPM binding key itself (proof_mode = "tpm").

#include <memory>
#include <optional>

#include "attest/token/signer.h"
#include "platform/base/bytes.h"
#include "platform/base/clock.h"
#include "platform/tpm/tpm.h"

namespace warden::agent {

/// Size of the secure heap: session keys, unsealed secrets and the local API's secret replies
/// in flight (each rounded up to a power of two); a full heap refuses more (503), never spills.
inline constexpr std::size_t kLockedHeapBytes = 256 * 1024;

enum class LockedMemory {
  kLocked,    ///< mlock'd: never swapped
  kUnlocked,  ///< mlock refused (RLIMIT_MEMLOCK below the heap, no CAP_IPC_LOCK): swappable
};

/// Call once at start, before any key or secret exists: OpenSSL's secure heap (mlock'd, excluded
/// from core dumps, cleansed on free) then holds every private scalar, including session keys,
/// and every SecretBytes (platform/base/secret.h). When mlock is refused the heap still works
/// (cleansed, not dumped) but may be swapped: that fallback is logged here as a warning and
/// returned as kUnlocked. Errors: kUnavailable when OpenSSL cannot set up the heap at all.
Result<LockedMemory> init_locked_key_memory(std::size_t bytes = kLockedHeapBytes);

/// A software ES256 session key. The private scalar lives in OpenSSL's secure heap (see
/// init_locked_key_memory); wipe() frees it (OpenSSL cleanses secure-heap memory on free).
class SessionKey final : public token::Signer {
 public:
  static Result<std::unique_ptr<SessionKey>> generate(Random& random);
  [[nodiscard]] token::Alg alg() const override { return token::Alg::kEs256; }
  [[nodiscard]] const token::Jwk& public_jwk() const override { return jwk_; }
  /// kRevoked after wipe().
  Result<Bytes> sign(ByteSpan signing_input) override;
  void wipe() { key_.reset(); }
  [[nodiscard]] bool wiped() const { return !key_; }
  /// The raw 32-byte RFC 7638 thumbprint (protocol::session_key_signed_bytes' jkt).
  [[nodiscard]] Bytes raw_thumbprint() const;

 private:
  SessionKey(std::unique_ptr<token::EcSigner> key, token::Jwk jwk)
      : key_(std::move(key)), jwk_(std::move(jwk)) {}
  std::unique_ptr<token::EcSigner> key_;
  token::Jwk jwk_;
};

/// Signs JOSE/COSE inputs with the TPM binding key: SHA-256 of the input, TPM2_Sign. One TPM
/// round trip per signature (17-190 ms on discrete TPMs).
class TpmBindingSigner final : public token::Signer {
 public:
  static Result<std::unique_ptr<TpmBindingSigner>> create(const tpm::Tpm& tpm, tpm::BindingKey key);
  [[nodiscard]] token::Alg alg() const override { return token::Alg::kEs256; }
  [[nodiscard]] const token::Jwk& public_jwk() const override { return jwk_; }
  Result<Bytes> sign(ByteSpan signing_input) override;

 private:
  TpmBindingSigner(const tpm::Tpm& tpm, tpm::BindingKey key, token::Jwk jwk)
      : tpm_(tpm), key_(std::move(key)), jwk_(std::move(jwk)) {}
  const tpm::Tpm& tpm_;
  tpm::BindingKey key_;
  token::Jwk jwk_;
};

/// A TPMT_SIGNATURE (ECDSA, SHA-256) from raw r||s, as the issuer's verify_signature takes it.
Result<Bytes> tpmt_signature_ecdsa_sha256(ByteSpan raw);

/// Signs SHA-256(`message`) with the binding key and returns the marshalled TPMT_SIGNATURE.
Result<Bytes> sign_tpmt(const tpm::Tpm& tpm, const tpm::BindingKey& key, ByteSpan message);

}  // namespace warden::agent
