#pragma once
// Token issuing: the signing keys (one signer per current kid, the published key set), status
// index allocation and revocation bits, the JWKS and status list documents, and the minting of
// workload tokens. Used by the service's coordinators; knows nothing of devices or policy.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

#include "attest/protocol/messages.h"
#include "attest/token/claims.h"
#include "attest/token/jwk.h"
#include "attest/token/signer.h"
#include "issuer/cache/ttl_cache.h"
#include "issuer/signing_keys.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"

namespace warden::issuer::tokens {

class TokenIssuer {
 public:
  struct Options {
    Store* store = nullptr;
    SigningKeys* keys = nullptr;
    const Clock* clock = nullptr;
    std::string issuer_url;  ///< the iss claim and the prefix of status list URIs
    std::uint64_t status_list_bits = 1U << 17;
    std::int64_t status_list_ttl_s = 2;  ///< the ttl claim of status list tokens
  };
  explicit TokenIssuer(Options options);
  /// Finds the current status list (the last of "1", "2", …), creating "1" on a new store.
  Status init();

  /// The iss claim: issuer_url, or "warden-issuer" without one.
  [[nodiscard]] std::string issuer_name() const;
  [[nodiscard]] std::string status_uri(std::string_view list_id) const;
  /// The signer of the current key, rebuilt only when the current kid changes.
  Result<std::shared_ptr<token::EcSigner>> signer();
  /// The published keys, cached: reloaded when this process rotated (the current kid changed),
  /// after kKeysTtl (retired keys expiring, other replicas rotating), or when `reload` (a token
  /// did not verify against the cached set).
  Result<std::shared_ptr<const token::KeySet>> published_keys(bool reload = false);

  /// A free index in the current status list; a full list is followed by the next.
  Result<std::pair<std::string, std::uint64_t>> allocate_status();
  /// Marks the token revoked and sets its status bit, in one transaction (Store::
  /// apply_device_change, which the service calls itself when the revocation has events);
  /// false when it already was.
  Result<bool> revoke_token(const TokenRecord& token);
  /// revoke_token() for every live token of the device; returns how many flipped.
  Result<std::uint64_t> revoke_all_tokens(std::string_view device_id);

  /// What a workload token says, decided by the caller (device, grant, lifetime).
  struct Workload {
    std::string device_id;
    const protocol::TokenRequest* request = nullptr;
    token::Confirmation cnf;
    std::int64_t now = 0;
    std::int64_t ttl = 0;
    std::string jti;
  };
  struct Minted {
    protocol::TokenResponse response;
    TokenRecord record;  ///< to commit before the response is given
  };
  Result<Minted> mint_workload(const Workload& workload);

  /// {"keys": [...]} of every published signing key.
  Result<std::string> jwks_json();
  /// The status list as a signed JWT (application/statuslist+jwt). Signed again only when its
  /// bits changed or kStatusListResign passed, so that an unchanged list is the same bytes
  /// (one ETag) for every request in between.
  Result<std::string> status_list_jwt(std::string_view list_id);

 private:
  static constexpr auto kSignerTtl = std::chrono::hours(24);  // rebuilt when the kid changes
  static constexpr auto kKeysTtl = std::chrono::seconds(5);
  /// Status indexes are taken from the store in blocks (disjoint across replicas) and handed
  /// out from memory; a restart leaves the rest of a block unused (never reused).
  static constexpr std::uint64_t kStatusBlock = 64;

  static constexpr std::int64_t kStatusListResign = 60;
  static constexpr std::int64_t kStatusListLifetime = 600;  // exp - iat of a status list token
  struct SignedList {
    Bytes digest;  // SHA-256 of the stored bits
    std::int64_t iat = 0;
    std::string jwt;
  };

  Options options_;
  std::mutex signed_lists_mu_;  // guards signed_lists_
  std::map<std::string, SignedList, std::less<>> signed_lists_;
  TtlCache<std::string, std::shared_ptr<token::EcSigner>> signers_;   // by kid
  TtlCache<std::string, std::shared_ptr<const token::KeySet>> keys_;  // by the current kid
  std::mutex list_mu_;  // guards list_number_ and the block
  std::uint64_t list_number_ = 1;
  std::uint64_t block_next_ = 0;
  std::uint64_t block_end_ = 0;
};

}  // namespace warden::issuer::tokens
