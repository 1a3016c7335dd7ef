#pragma once

// Proofs of possession in the shape of DPoP (RFC 9449).

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "attest/token/jwt.h"
#include "platform/base/clock.h"

namespace warden::token {

struct ProofRequest {
  std::string htm;                          ///< HTTP method, e.g. "POST"
  std::string htu;                          ///< target URI without query and fragment
  std::optional<std::string> access_token;  ///< adds ath when set
  std::optional<std::string> nonce;         ///< server-provided DPoP-Nonce
};

/// Creates a proof: header {typ dpop+jwt, alg, jwk (public)}, claims {jti (16 random bytes,
/// base64url), htm, htu, iat = now[, ath][, nonce]}.
Result<std::string> create_proof(Signer& signer, const ProofRequest& request, std::int64_t now,
                                 Random& random);

/// Bounded jti replay cache: entries expire after `window` seconds; when full of live
/// entries, new proofs are refused (fail closed). Not thread-safe: one owner.
class ReplayCache {
 public:
  ReplayCache(std::size_t capacity, std::int64_t window) : capacity_(capacity), window_(window) {}
  /// kReplay if `jti` was seen within the window; kLimitExceeded if full.
  Status check_and_insert(const std::string& jti, std::int64_t now);
  [[nodiscard]] std::size_t size() const { return seen_.size(); }
  /// Forgets expired entries; returns how many are left.
  std::size_t prune(std::int64_t now) {
    expire(now);
    return seen_.size();
  }

 private:
  void expire(std::int64_t now);
  std::size_t capacity_;
  std::int64_t window_;
  std::deque<std::pair<std::int64_t, std::string>> order_;
  std::unordered_map<std::string, std::int64_t> seen_;
};

struct ProofCheck {
  std::string htm;
  std::string htu;
  std::vector<std::string> htu_aliases;  ///< other accepted htu values (the issuer's aliases)
  std::int64_t now = 0;
  std::int64_t max_age = 300;               ///< iat may be at most this old
  std::int64_t leeway = 5;                  ///< and at most this far in the future
  std::optional<std::string> access_token;  ///< when set, ath must match
  std::optional<std::string> expected_jkt;  ///< the token's cnf.jkt
  std::optional<std::string> nonce;
};

struct VerifiedProof {
  Jwk key;
  std::string jkt;
  std::string jti;
  std::int64_t iat = 0;
};

/// Verifies a proof (signature with the embedded public jwk; typ, alg, htm, htu, iat window,
/// ath, jkt) and records its jti. kProofMismatch for a mismatch, kReplay for a reused jti.
Result<VerifiedProof> verify_proof(std::string_view proof, const ProofCheck& check,
                                   ReplayCache& replay);

/// verify_proof without the replay check: the caller records the jti where it belongs (the
/// issuer: per device, issuer/service.cpp).
Result<VerifiedProof> verify_proof_unrecorded(std::string_view proof, const ProofCheck& check);

/// base64url(SHA-256(ASCII token)), the ath claim.
std::string access_token_hash(std::string_view token);

}  // namespace warden::token
