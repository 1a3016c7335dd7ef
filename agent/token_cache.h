#pragma once
// Workload tokens the agent obtained, keyed by (workload identity, audience, scopes, format, ttl):
// a token is reused only for a request with the same ttl, so none outlives the ttl asked for.
// A token is handed only to the identity it was issued for, and proofs are signed only for a
// jti issued to that same identity. Not thread-safe: the Agent's mutex guards it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/agent_config.h"
#include "platform/os/workload_identity.h"

namespace warden::agent {

struct CachedToken {
  std::string token;  ///< JWT text, or base64url of the CWT
  std::string jti;
  std::int64_t issued_at = 0;
  std::int64_t expires_at = 0;
  std::string owner;         ///< workload_identity() of the caller it was issued to
  std::string container_id;  ///< for revocation when the container goes away
  std::uint64_t status_index = 0;
  std::string status_list;  ///< list id in the issuer's status list URI ("" when unknown)
};

/// The stable identity of a workload, from kernel-derived selectors only (the pid is left out:
/// every process of the same workload shares its tokens).
std::string workload_identity(const os::Selectors& s);

class TokenCache {
 public:
  /// `ttl_seconds`: the lifetime the request asked for (after the agent's cap). Part of the key:
  /// a token issued for a longer ttl would otherwise answer a request for a shorter one.
  static std::string key(const std::string& identity, const std::string& audience,
                         std::vector<std::string> scopes, TokenFormat format,
                         std::int64_t ttl_seconds);

  /// The entry for `key` that is valid at `now` (never an expired one).
  [[nodiscard]] const CachedToken* find(const std::string& key, std::int64_t now) const;
  void put(const std::string& key, CachedToken token);
  /// The unexpired token with this jti.
  [[nodiscard]] const CachedToken* by_jti(const std::string& jti, std::int64_t now) const;
  /// Drops the tokens of one container; returns their jtis.
  std::vector<std::string> remove_container(const std::string& container_id);
  /// Drops one token by jti (the status list marked it revoked).
  bool remove_jti(const std::string& jti);
  /// Drops everything; returns every jti.
  std::vector<std::string> clear();
  /// Drops entries expired at `now`.
  void expire(std::int64_t now);
  [[nodiscard]] std::size_t size() const { return by_key_.size(); }
  [[nodiscard]] std::vector<std::string> jtis() const;

 private:
  std::map<std::string, CachedToken> by_key_;
  std::map<std::string, std::string> key_of_jti_;
};

}  // namespace warden::agent
