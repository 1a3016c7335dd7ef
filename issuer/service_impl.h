#pragma once
// Internal to issuer/: the IssuerService implementation. service.cpp holds the enroll,
// challenge, token and revoke coordinators, service_attest.cpp the appraisal, service_admin.cpp
// the admin operations; the modules they coordinate are tokens::TokenIssuer (keys, status
// lists, minting), gate::DeviceGate (the token path's checks and caches) and audit::AuditLog.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "attest/policy/policy.h"
#include "attest/token/dpop.h"
#include "attest/token/jwk.h"
#include "attest/token/signer.h"
#include "issuer/assign.h"
#include "issuer/audit/audit_log.h"
#include "issuer/cache/ttl_cache.h"
#include "issuer/ek_trust.h"
#include "issuer/gate/device_gate.h"
#include "issuer/nonce.h"
#include "issuer/service.h"
#include "issuer/ssf/events.h"
#include "issuer/ssf/streams.h"
#include "issuer/tokens/token_issuer.h"
#include "issuer/untrusted_text.h"
#include "issuer/workload_policy.h"

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
  [[nodiscard]] const IssuerConfig* config() const override { return options_.config; }
  /// Introspection callers: Shared Signals receivers (their bearer credential) and admins.
  std::optional<oauth::Sources> oauth_sources() override {
    oauth::Sources s;
    s.store = options_.store;
    s.clock = options_.clock;
    s.published_keys = [this](bool reload) { return tokens_.published_keys(reload); };
    s.issuer = tokens_.issuer_name();
    s.issuer_url = options_.issuer_url;
    if (ssf_) {
      s.authenticate = [this](std::string_view a) { return authenticate_receiver(a); };
    }
    return s;
  }

  Result<DevicePage> admin_list_devices(std::size_t limit, std::string_view after_id) override;
  Result<DeviceDetail> admin_get_device(std::string_view id) override;
  Status admin_set_device_state(std::string_view id, std::string_view state,
                                std::string_view actor) override;
  Result<PolicyVersion> admin_put_policy(std::string_view version, std::string_view toml,
                                         std::string_view actor) override;
  Result<std::vector<PolicyVersion>> admin_list_policies() override;
  Result<std::vector<AuditRecord>> admin_audit(const AuditFilter& filter) override;
  Status admin_delete_device(std::string_view id, std::string_view actor) override;
  Status admin_set_device_group(std::string_view id, std::string_view group,
                                std::string_view actor) override;
  void housekeeping() override;

  ssf::Transmitter* ssf() override { return ssf_.get(); }
  void set_on_events_committed(std::function<void()> hook) override;
  Result<std::string> authenticate_receiver(std::string_view authorization) override;
  Result<std::string> admin_add_ssf_receiver(std::string_view name,
                                             std::string_view actor) override;
  Result<std::vector<SsfReceiver>> admin_list_ssf_receivers() override;
  Status admin_delete_ssf_receiver(std::string_view name, std::string_view actor) override;

 private:
  /// Writes the change with its events (events only when ssf.enabled) in one transaction, then
  /// wakes the push worker when events were written.
  Result<std::vector<TokenRecord>> apply_change(
      DeviceChange change,
      std::function<std::vector<SsfEventDraft>(const std::vector<TokenRecord>&)> events);
  /// record_attestation_outcome with a change (the appraisal revoked or restored compliance).
  Result<std::vector<TokenRecord>> record_attestation_change(
      std::string_view id, ByteSpan nonce, std::int64_t expiry, const AttestationUpdate& u,
      const AuditRecord& audit, DeviceChange change,
      std::function<std::vector<SsfEventDraft>(const std::vector<TokenRecord>&)> events);
  /// Creates the transmitter when ssf.enabled (service_ssf.cpp).
  void init_ssf();
  [[nodiscard]] std::int64_t now() const { return options_.clock->unix_now(); }
  std::string random_id();
  /// The active policy, cached: re-read from the store when this process put a new version,
  /// and at most kPolicyTtl after the last read (another replica put one).
  Result<std::shared_ptr<const ActivePolicy>> active_policy();
  /// A serialized ApprovedPolicy of the quoted values of `seal_pcrs`.
  Result<Bytes> approve_seal_pcrs(std::string_view seal_pcrs, const PcrSelection& quoted,
                                  const attest::PcrValues& values);
  /// The signer of the current key (tokens::TokenIssuer).
  Result<std::shared_ptr<token::EcSigner>> signer() { return tokens_.signer(); }
  /// This process wrote the device: the token path's cache of it is dropped.
  void forget_device(std::string_view device_id) { gate_.forget(device_id); }
  /// A minted workload token and the records that must commit before it is answered.
  struct TokenIssue {
    protocol::TokenResponse response;
    TokenRecord record;
    AuditRecord audit;
  };
  Result<TokenIssue> mint_token(const protocol::TokenRequest& request, const RequestTarget& target);
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

  static constexpr auto kPolicyTtl = std::chrono::seconds(2);
  /// One entry (key 0); this process's puts invalidate it.
  TtlCache<int, std::shared_ptr<const ActivePolicy>> policy_cache_;
  tokens::TokenIssuer tokens_;
  gate::DeviceGate gate_;
  std::mutex random_mu_;  // Random is not required to be thread-safe

  static constexpr std::size_t kRefusalKeys = 4096;
  issuer::audit::AuditLog audit_log_;      // refusal budgets per device id
  std::unique_ptr<ssf::Transmitter> ssf_;  // null when ssf.enabled is false
};

}  // namespace warden::issuer
