#pragma once
// The device gate of POST /v1/token: the device token (verified once, cached until its exp), the
// device's state (cached for kDeviceTtl; this process's own writes evict it at once), the
// DPoP-style proof (htm/htu, key, age), the device's token rate and its proofs' replay cache.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "attest/protocol/messages.h"
#include "attest/token/claims.h"
#include "attest/token/dpop.h"
#include "issuer/cache/ttl_cache.h"
#include "issuer/config.h"
#include "issuer/service.h"
#include "issuer/store/store.h"
#include "issuer/tokens/token_issuer.h"
#include "platform/base/refusal_budget.h"

namespace warden::issuer::gate {

/// What the token path needs of a device.
struct DeviceStatus {
  DeviceState state = DeviceState::kEnabled;
  std::string last_verdict;
  std::string group;
  std::int64_t revoked_at = 0;
};

class DeviceGate {
 public:
  struct Options {
    Store* store = nullptr;
    const Clock* clock = nullptr;
    IssuerConfig::Limits limits;
    /// The proof URLs /v1/token accepts: issuer_url and its aliases, without a final '/'.
    std::vector<std::string> proof_bases;
  };
  DeviceGate(Options options, tokens::TokenIssuer& tokens);

  /// A token request that passed the gate: its device token's claims and its device.
  struct Admitted {
    token::Claims device_token;
    std::string device_id;
    DeviceStatus device;
  };
  Result<Admitted> admit(const protocol::TokenRequest& request, const RequestTarget& target,
                         std::int64_t now);
  Result<DeviceStatus> status(const std::string& device_id);
  /// This process wrote the device: drop what is cached of it.
  void forget(std::string_view device_id);
  /// Forgets idle devices' rates and proofs.
  void housekeeping(std::int64_t now);

  static constexpr auto kDeviceTtl = std::chrono::seconds(1);
  static constexpr std::size_t kDeviceCacheMax = 100000;

 private:
  Result<token::Claims> verified_device_token(ByteSpan device_token, std::int64_t now);
  /// A jti is remembered for the device whose token the proof goes with, only for as long as the
  /// proof's iat would still be accepted, and each device's cache holds what its rate
  /// (limits.token_burst, token_per_minute) lets it send in that time. A device that fills its
  /// own cache is refused; no other device is.
  Status record_proof(const std::string& device_id, const std::string& jti, std::int64_t now);
  void prune_proofs(std::int64_t now);  ///< forgets devices with no live proof; holds replay_mu_
  [[nodiscard]] std::size_t proof_cache_capacity() const;

  static constexpr std::int64_t kProofMaxAge = 300;
  static constexpr std::int64_t kProofLeeway = 5;
  static constexpr std::size_t kTokenCacheMax = 100000;

  Options options_;
  tokens::TokenIssuer& tokens_;
  TtlCache<std::string, DeviceStatus> devices_;  // by device id
  /// By the SHA-256 of the token's bytes, until the token's exp.
  TtlCache<std::string, token::Claims> verified_tokens_;
  std::mutex replay_mu_;                                              // guards proof_replay_
  std::unordered_map<std::string, token::ReplayCache> proof_replay_;  // by device id
  RefusalBudget token_rate_;  // token requests per device id; has its own lock
};

}  // namespace warden::issuer::gate
