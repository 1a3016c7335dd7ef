#pragma once
// RFC 7662 token introspection, free of HTTP: the form body a caller posts, and the decision
// whether a token the issuer minted is active now. Active means: signed by one of the issuer's
// published keys, typ at+jwt, iss this issuer, inside exp/nbf (no leeway: the issuer's clock is
// the reference), and its token record, its device and the device's revocation time all still
// admit it. Everything else is {"active": false}: the caller learns nothing about why.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "attest/token/jwk.h"
#include "attest/token/jwt.h"
#include "issuer/cache/ttl_cache.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"

namespace warden::issuer::oauth {

/// What the OAuth endpoints read, handed over by the service (IssuerService::oauth_sources).
struct Sources {
  Store* store = nullptr;
  const Clock* clock = nullptr;
  /// The published signing keys, cached by the caller; `reload` re-reads them (a token signed
  /// by a key this process has not seen yet: another replica rotated).
  std::function<Result<std::shared_ptr<const token::KeySet>>(bool reload)> published_keys;
  std::string issuer;      ///< the iss of the issuer's tokens
  std::string issuer_url;  ///< external base URL; "" = no authorization-server metadata
  /// The introspection caller named by an Authorization header (a Shared Signals receiver's
  /// bearer token): its name, or an error. Empty: only admin callers may introspect.
  std::function<Result<std::string>(std::string_view authorization)> authenticate;
};

struct IntrospectionLimits {
  std::size_t max_token_bytes = 8192;  ///< the decoded token parameter
  std::size_t max_params = 16;         ///< form fields in one body
};

/// The body of POST /oauth/introspect (application/x-www-form-urlencoded): the decoded `token`
/// parameter. `token_type_hint` and unknown parameters are ignored (RFC 7662 2.1). Errors:
/// kMalformed (bad percent-encoding, no or a repeated token), kLimitExceeded.
Result<std::string> parse_introspection_form(std::string_view body,
                                             const IntrospectionLimits& limits);

/// Decodes one application/x-www-form-urlencoded name or value ('+' is a space, %XX a byte).
Result<std::string> form_decode(std::string_view text);

struct Introspection {
  bool active = false;
  boost::json::object claims;  ///< the token's claims when active
  std::string why_inactive;    ///< for logs and tests only, never sent
};

class Introspector {
 public:
  explicit Introspector(Sources sources)
      : sources_(std::move(sources)), verified_(*sources_.clock, {kVerifiedTtl, kVerifiedMax}) {}
  /// The decision for `token`. Errors only where the answer is unknown (the store is down):
  /// a token that is not valid is an Introspection with active false.
  Result<Introspection> introspect(std::string_view token);
  /// The RFC 7662 2.2 response body: {"active": false} or the claims with active and
  /// token_type.
  static std::string to_json(const Introspection& result);

 private:
  /// Reloads the published keys at most once a second, whatever kids callers send.
  static constexpr std::int64_t kReloadInterval = 1;
  Result<std::shared_ptr<const token::KeySet>> keys_for_unknown_kid();
  /// The token's signature, typ and claims, verified once: a relying party asks about the same
  /// token on every request it serves. Time and revocation are decided afresh each time.
  /// jwt null and why set for a token that does not verify; errors only for the sources.
  struct Verification {
    std::shared_ptr<const token::VerifiedJwt> jwt;
    std::string why;
  };
  Result<Verification> verified(std::string_view compact, std::int64_t now);

  static constexpr auto kVerifiedTtl = std::chrono::seconds(60);
  static constexpr std::size_t kVerifiedMax = 4096;
  Sources sources_;
  std::atomic<std::int64_t> last_reload_{0};
  // By the SHA-256 of the token; only tokens whose signature verified (has its own lock).
  TtlCache<std::string, std::shared_ptr<const token::VerifiedJwt>> verified_;
};

}  // namespace warden::issuer::oauth
