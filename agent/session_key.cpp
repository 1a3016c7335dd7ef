#include "agent/session_key.h"

#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::agent {

Result<LockedMemory> init_locked_key_memory(std::size_t bytes) {
  static LockedMemory state = LockedMemory::kLocked;
  if (CRYPTO_secure_malloc_initialized() == 1) return state;
  // The minimum block (32) keeps fragmentation low; OpenSSL returns 2 when mlock failed.
  const int r = CRYPTO_secure_malloc_init(bytes, 32);
  if (r == 0) {
    return fail(ErrorCode::kUnavailable, "secure heap: CRYPTO_secure_malloc_init(" +
                                             std::to_string(bytes) +
                                             ") failed (mmap or guard pages refused)");
  }
  if (r == 2) {
    state = LockedMemory::kUnlocked;
    spdlog::warn(
        "secure heap: mlock of {} bytes refused (RLIMIT_MEMLOCK too low and no CAP_IPC_LOCK; "
        "raise LimitMEMLOCK): keys and unsealed secrets are cleansed and kept out of core "
        "dumps, but may be swapped",
        bytes);
  }
  return state;
}

Result<std::unique_ptr<SessionKey>> SessionKey::generate(Random& random) {
  auto key = token::EcSigner::generate(random);
  if (!key) return fail(std::move(key).error().context("session key"));
  token::Jwk jwk = key->public_jwk();
  return std::unique_ptr<SessionKey>(
      new SessionKey(std::make_unique<token::EcSigner>(std::move(*key)), std::move(jwk)));
}

Result<Bytes> SessionKey::sign(ByteSpan signing_input) {
  if (!key_) return fail(ErrorCode::kRevoked, "session key: wiped (revoked or shutting down)");
  return key_->sign(signing_input);
}

Bytes SessionKey::raw_thumbprint() const {
  auto raw = base64url_decode(jwk_.thumbprint());
  return raw ? std::move(*raw) : Bytes{};
}

Result<std::unique_ptr<TpmBindingSigner>> TpmBindingSigner::create(const tpm::Tpm& tpm,
                                                                   tpm::BindingKey key) {
  auto pem = key.public_key_pem();
  if (!pem) return fail(std::move(pem).error().context("binding key"));
  auto pkey = ossl::public_key_from_pem(*pem);
  if (!pkey) return fail(std::move(pkey).error().context("binding key"));
  auto jwk = token::Jwk::from_pkey(pkey->get());
  if (!jwk) return fail(std::move(jwk).error().context("binding key"));
  return std::unique_ptr<TpmBindingSigner>(
      new TpmBindingSigner(tpm, std::move(key), std::move(*jwk)));
}

Result<Bytes> TpmBindingSigner::sign(ByteSpan signing_input) {
  auto sig = tpm_.sign(key_, ossl::sha256(signing_input));
  if (!sig) return fail(std::move(sig).error().context("binding key signature"));
  return std::move(sig->raw);
}

Result<Bytes> tpmt_signature_ecdsa_sha256(ByteSpan raw) {
  if (raw.size() != 64) {
    return fail(ErrorCode::kInvalidArgument,
                "TPMT_SIGNATURE: expected a 64-byte P-256 r||s, found " +
                    std::to_string(raw.size()) + " bytes");
  }
  ByteWriter w;
  w.u16be(0x0018);  // TPM_ALG_ECDSA
  w.u16be(0x000B);  // TPM_ALG_SHA256
  w.tpm2b(raw.first(32));
  w.tpm2b(raw.subspan(32));
  return std::move(w).take();
}

Result<Bytes> sign_tpmt(const tpm::Tpm& tpm, const tpm::BindingKey& key, ByteSpan message) {
  auto sig = tpm.sign(key, ossl::sha256(message));
  if (!sig) return fail(std::move(sig).error());
  return tpmt_signature_ecdsa_sha256(sig->raw);
}

}  // namespace warden::agent
