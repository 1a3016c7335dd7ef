#pragma once
// Internal to issuer/: the IssuerService implementation, split over service.cpp (enrollment,
// challenge, tokens, revocation, public endpoints), service_attest.cpp (appraisal) and
// service_admin.cpp (admin JSON).

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "attest/policy/policy.h"
#include "attest/token/dpop.h"
#include "attest/token/jwk.h"
#include "attest/token/signer.h"
#include "issuer/audit/audit_log.h"
#include "issuer/cache/ttl_cache.h"
#include "issuer/ek_trust.h"
#include "issuer/nonce.h"
#include "issuer/refusal_budget.h"
#include "issuer/service.h"
#include "issuer/workload_policy.h"

#define WARDEN_ASSIGN(var, expr)                             \
  auto var##_result_ = (expr);                               \
  if (!var##_result_) {                                      \
    return ::warden::fail(std::move(var##_result_).error()); \
  }                                                          \
  auto var = std::move(*var##_result_)

namespace warden::issuer {

/// The active policy document, parsed once per version.
struct ActivePolicy {
  std::int64_t id = 0;
  attest::policy::Policy reference;
  WorkloadPolicy workload;
};

/// reasons -> JSON array text [{"code","subject","expected","found"}] (audit::reasons_json).
inline std::string reasons_to_json(const std::vector<protocol::Reason>& reasons) {
  return audit::reasons_json(reasons);
}

class Service final : public IssuerService {
 public:
  static constexpr std::int64_t kEnrollmentTtl = 600;
  static constexpr std::int64_t kRevokeWindow = 300;
  /// Pending enrollments kept at most (one per EK); beyond it the oldest are evicted
  /// (docs/operations.md).
  static constexpr std::size_t kMaxPendingEnrollments = 10000;

  Service(Options options, EkTrust trust);
  Status init();

  Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest& request) override;
  Result<protocol::ActivateResponse> activate(std::string_view enrollment_id,
                                              const protocol::ActivateRequest& request) override;
  Result<protocol::ChallengeResponse> challenge(const protocol::ChallengeRequest& request) override;
  Result<protocol::AttestResponse> attest(const protocol::AttestRequest& request,
                                          ByteSpan received) override;
  Result<protocol::TokenResponse> token(const protocol::TokenRequest& request,
                                        const RequestTarget& target) override;
  void token_async(const protocol::TokenRequest& request, const RequestTarget& target,
                   std::function<void(Result<protocol::TokenResponse>)> done) override;
  Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest& request) override;

  Result<std::string> jwks_json() override;
  Result<std::string> status_list_jwt(std::string_view list_id) override;
  Status ready() override;

  Result<std::string> admin_list_devices(std::size_t limit, std::string_view after_id) override;
  Result<std::string> admin_get_device(std::string_view id) override;
  Status admin_set_device_state(std::string_view id, std::string_view state,
                                std::string_view actor) override;
  Result<std::string> admin_put_policy(std::string_view version, std::string_view toml,
                                       std::string_view actor) override;
  Result<std::string> admin_list_policies() override;
  Result<std::string> admin_audit(const AuditFilter& filter) override;
  Status admin_delete_device(std::string_view id, std::string_view actor) override;
  Status admin_set_device_group(std::string_view id, std::string_view group,
                                std::string_view actor) override;
  void housekeeping() override;

 private:
  [[nodiscard]] std::int64_t now() const { return options_.clock->unix_now(); }
  std::string random_id();
  /// The active policy, cached: re-read from the store when this process put a new version,
  /// and at most kPolicyTtl after the last read (another replica put one).
  Result<std::shared_ptr<const ActivePolicy>> active_policy();
  /// The signer of the current key, rebuilt only when the current kid changes.
  Result<std::shared_ptr<token::EcSigner>> signer();
  /// What the token path needs of a device, cached per device for at most kDeviceTtl (other
  /// replicas' revocations and attestations); this process's own writes evict it at once.
  struct DeviceGate {
    DeviceState state = DeviceState::kEnabled;
    std::string last_verdict;
    std::string group;
    std::int64_t revoked_at = 0;
  };
  Result<DeviceGate> device_gate(const std::string& device_id);
  void forget_device(std::string_view device_id);
  /// Claims of a device token, verified once and cached by the SHA-256 of its bytes until it
  /// expires (the signature and the claims cannot change; revocation is checked per request).
  Result<token::Claims> verified_device_token(ByteSpan device_token, std::int64_t now);
  /// The published keys, cached in memory: reloaded when this process rotated (the current kid
  /// changed), after kKeysTtl seconds (retired keys expiring, other replicas rotating), or when
  /// `reload` (a token did not verify against the cached set).
  Result<std::shared_ptr<const token::KeySet>> published_keys(bool reload = false);
  [[nodiscard]] std::string status_uri(std::string_view list_id) const;
  /// A minted workload token and the records that must commit before it is answered.
  struct TokenIssue {
    protocol::TokenResponse response;
    TokenRecord record;
    AuditRecord audit;
  };
  Result<TokenIssue> mint_token(const protocol::TokenRequest& request, const RequestTarget& target);
  /// Flips the status bit of every live token of `device_id`; returns how many.
  Result<std::uint64_t> revoke_all_tokens(std::string_view device_id);
  Result<bool> revoke_token(const TokenRecord& token);
  /// A free index in the current status list; a full list is followed by the next ("1", "2", …).
  Result<std::pair<std::string, std::uint64_t>> allocate_status();
  /// The audit log's write() and refusal() (issuer/audit/audit_log.h).
  void audit(AuditRecord record) { audit_log_.write(std::move(record)); }
  void audit_refusal(AuditRecord record) { audit_log_.refusal(std::move(record)); }
  /// The device result CWT and its expiry.
  Result<std::pair<Bytes, std::int64_t>> mint_device_token(const std::string& device_id,
                                                           ByteSpan nonce,
                                                           const token::Jwk& cnf_key,
                                                           const std::string& policy_version,
                                                           const Bytes& evidence_hash);

  Options options_;
  EkTrust trust_;
  NonceIssuer nonces_;

  using Steady = std::chrono::steady_clock;
  static constexpr auto kPolicyTtl = std::chrono::seconds(2);
  static constexpr auto kSignerTtl = std::chrono::hours(24);  // rebuilt when the kid changes
  static constexpr auto kDeviceTtl = std::chrono::seconds(1);
  static constexpr std::size_t kDeviceCacheMax = 100000;
  static constexpr std::size_t kTokenCacheMax = 100000;
  static constexpr auto kKeysTtl = std::chrono::seconds(5);
  /// One entry (key 0); this process's puts invalidate it.
  TtlCache<int, std::shared_ptr<const ActivePolicy>> policy_cache_;
  TtlCache<std::string, std::shared_ptr<token::EcSigner>> signers_;  // by kid
  TtlCache<std::string, DeviceGate> devices_;                        // by device id
  /// By the SHA-256 of the token's bytes, until the token's exp.
  TtlCache<std::string, token::Claims> verified_tokens_;
  TtlCache<std::string, std::shared_ptr<const token::KeySet>> keys_;  // by the current kid

  /// Token proofs: a jti is remembered for the device whose token the proof goes with, only for
  /// as long as the proof's iat would still be accepted, and each device's cache holds what its
  /// rate (limits.token_burst, token_per_minute) lets it send in that time. A device that fills
  /// its own cache is refused; no other device is.
  static constexpr std::int64_t kProofMaxAge = 300;
  static constexpr std::int64_t kProofLeeway = 5;
  [[nodiscard]] std::size_t proof_cache_capacity() const;
  Status record_proof(const std::string& device_id, const std::string& jti, std::int64_t t);
  void prune_proofs(std::int64_t t);  ///< forgets devices with no live proof; holds replay_mu_
  std::mutex replay_mu_;              // guards proof_replay_
  std::unordered_map<std::string, token::ReplayCache> proof_replay_;  // by device id
  RefusalBudget token_rate_;  // token requests per device id; has its own lock
  /// The proof URLs /v1/token accepts: issuer_url and issuer_url_aliases, without a final '/'.
  std::vector<std::string> proof_bases_;

  std::mutex random_mu_;  // Random is not required to be thread-safe

  static constexpr std::size_t kRefusalKeys = 4096;
  issuer::audit::AuditLog audit_log_;  // refusal budgets per device id

  /// Status indexes are taken from the store in blocks (disjoint across replicas) and handed
  /// out from memory; a restart leaves the rest of a block unused (never reused).
  static constexpr std::uint64_t kStatusBlock = 64;
  std::mutex list_mu_;  // guards list_number_ and the block
  std::uint64_t list_number_ = 1;
  std::uint64_t block_next_ = 0;
  std::uint64_t block_end_ = 0;
};

}  // namespace warden::issuer
