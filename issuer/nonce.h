#pragma once

#include <cstdint>
#include <string_view>

#include "platform/base/bytes.h"
#include "platform/base/clock.h"
#include "platform/base/secret.h"

namespace warden::issuer {

/// Stateless attestation nonces: 32 bytes = version(1) || random(11) || expiry(u32 BE, Unix
/// seconds) || HMAC-SHA256(key, version || random || expiry || device id)[0..16]. Any replica that
/// holds the key can check one without a shared nonce table; single use is enforced by the caller
/// (the device record remembers the last nonce it accepted).
class NonceIssuer {
 public:
  static constexpr std::size_t kSize = 32;

  /// `key` is the issuer's nonce key (at least 32 bytes), shared by all replicas.
  NonceIssuer(SecretBytes key, const Clock& clock, Random& random, std::int64_t ttl_seconds)
      : key_(std::move(key)), clock_(clock), random_(random), ttl_(ttl_seconds) {}

  /// A fresh nonce for `device_id`.
  [[nodiscard]] Bytes mint(std::string_view device_id) const;
  /// Checks that `nonce` was minted by this key for `device_id` and has not expired.
  /// Errors: kMalformed (size/version), kBadSignature (not ours or another device's), kExpired.
  [[nodiscard]] Status check(ByteSpan nonce, std::string_view device_id) const;
  /// The expiry encoded in a nonce (meaningful only after check()).
  static std::int64_t expiry(ByteSpan nonce);

 private:
  [[nodiscard]] Bytes mac(ByteSpan prefix, std::string_view device_id) const;

  SecretBytes key_;
  const Clock& clock_;
  Random& random_;
  std::int64_t ttl_;
};

}  // namespace warden::issuer
