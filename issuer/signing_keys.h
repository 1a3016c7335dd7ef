#pragma once

#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/openssl.h"

namespace warden::issuer {

/// The issuer's ES256 (P-256) token signing keys. Private keys are PEM files `<kid>.pem` (mode
/// 0600) in the key directory; their metadata (kid, public PEM, retirement) is in the Store. A
/// rotation makes a new current key and keeps the previous one published until `not_after`
/// (retirement + the longest token TTL), so tokens it signed still verify.
class SigningKeys {
 public:
  /// Loads the current key, generating and recording one if there is none.
  static Result<std::unique_ptr<SigningKeys>> open(std::filesystem::path dir, Store& store,
                                                   const Clock& clock);

  /// Generates a new current key and retires the previous one, published for `max_token_ttl_s`.
  Status rotate(std::int64_t max_token_ttl_s);
  /// Rotates when the current key is older than `rotation_s` (0 = never).
  Status rotate_if_due(std::int64_t rotation_s, std::int64_t max_token_ttl_s);

  /// Key id of the current signing key.
  [[nodiscard]] std::string current_kid() const;
  /// The current private key (shared ownership; safe to use after a rotation).
  [[nodiscard]] std::shared_ptr<EVP_PKEY> current_key() const;
  /// Public keys to publish in the JWKS now: the current key and retired keys not yet past
  /// not_after.
  [[nodiscard]] Result<std::vector<SigningKeyInfo>> published() const;

 private:
  SigningKeys(std::filesystem::path dir, Store& store, const Clock& clock)
      : dir_(std::move(dir)), store_(store), clock_(clock) {}
  Result<SigningKeyInfo> generate();
  Status load(const SigningKeyInfo& info);

  std::filesystem::path dir_;
  Store& store_;
  const Clock& clock_;
  mutable std::mutex mu_;
  SigningKeyInfo current_info_;
  std::shared_ptr<EVP_PKEY> current_;
};

}  // namespace warden::issuer
