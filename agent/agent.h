#pragma once
// The agent core: enrollment, attestation, the device token, workload tokens and proofs, sealed
// secrets, revocation and posture reactions (ARCHITECTURE.md, "Trust flows"). Transport-free:
// the local API calls it through WorkloadService, the daemon's loop through start()/tick(), the
// posture monitor through apply().
//
// Locking: one mutex (mu_) guards every member below it; TPM commands and issuer round trips
// run under it, so requests are serialised while the agent attests (the TPM is one device and
// swtpm serves one connection at a time).

#include <chrono>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/api/event_bus.h"
#include "agent/api/workload_service.h"
#include "agent/config/agent_config.h"
#include "agent/issuer_client.h"
#include "agent/lifecycle.h"
#include "agent/posture/posture.h"
#include "agent/session_key.h"
#include "agent/state_store.h"
#include "agent/token_cache.h"
#include "platform/base/clock.h"
#include "platform/os/service_notify.h"
#include "platform/tpm/tpm.h"

namespace warden::agent {

struct AgentOptions {
  AgentConfig config;
  IssuerApi* issuer = nullptr;      ///< required; outlives the agent
  const Clock* clock = nullptr;     ///< required
  Random* random = nullptr;         ///< required
  api::EventBus* bus = nullptr;     ///< optional: events for GET /v1/watch
  const os::ServiceNotifier* notifier = nullptr;  ///< optional: STATUS=/READY=1
  /// Called (under the agent's lock) before the agent writes or removes a file of its state
  /// dir, so that the posture monitor does not take it for tampering.
  std::function<void(const std::filesystem::path&)> before_state_write;
  std::chrono::milliseconds retry_base{1000};     ///< backoff of re-attestation retries
  std::chrono::milliseconds retry_max{5 * 60 * 1000};
};

class Agent final : public WorkloadService {
 public:
  static Result<std::unique_ptr<Agent>> create(AgentOptions options);
  ~Agent() override;
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Opens the state dir, resumes the enrollment record (or enrolls), attests, and serves.
  /// A failure leaves the agent degraded (tick() retries with backoff); the error says why.
  Status start();
  /// Periodic work: renews the device token before it expires, retries a failed attestation
  /// (jittered exponential backoff), drops expired tokens. Returns the delay until the next
  /// call is useful.
  std::chrono::milliseconds tick();
  /// Applies a classified posture change (the architecture's table): kRevokeWorkload revokes
  /// that container's tokens, kReattest re-attests (a refusal revokes everything), kRevokeAll
  /// revokes everything, wipes keys and secrets, then re-attests with backoff.
  void apply(const posture::Change& change);
  /// Fetches the issuer's status list and drops (and stops proving for) every cached token it
  /// marks revoked. Source kStatusList.
  Status poll_status_list();
  /// While serving, asks the issuer whether it still knows this device as enabled (a challenge:
  /// cheap, stateless on the issuer); revoked there -> revoked here at once, re-attesting with
  /// backoff. The round trip runs outside the agent's lock.
  Status poll_device_status();
  /// Stop serving and wipe key material (SIGTERM). Nothing is reported to the issuer.
  void shutdown();
  /// Replaces the configuration (SIGHUP): token TTLs, proof mode and posture intervals apply
  /// at once; the TCTI, state dir and issuer URL need a restart.
  void reload(const AgentConfig& config);

  [[nodiscard]] AgentState state() const;
  /// Counts accepted attestations; a change means the posture monitor should re-baseline.
  [[nodiscard]] std::uint64_t attestations() const;
  /// The lock every TPM command of the agent runs under, for other users of the same TPM (the
  /// posture monitor's probes): swtpm serves one connection at a time.
  [[nodiscard]] std::mutex& tpm_mutex() const { return mu_; }
  [[nodiscard]] std::optional<std::string> device_id() const;

  // WorkloadService
  Result<TokenResponse> token(const os::Selectors& caller, const TokenRequest& request) override;
  Result<ProofResponse> proof(const os::Selectors& caller, const ProofRequest& request) override;
  Result<SecretBytes> secret(const os::Selectors& caller, const std::string& name) override;
  Result<AgentStatus> status() override;
  Status seal_secret(const os::Selectors& caller, const SealRequest& request) override;
  Status revoke(const os::Selectors& caller, const std::string& reason) override;
  Result<AgentStatus> reattest(const os::Selectors& caller) override;

 private:
  explicit Agent(AgentOptions options);

  std::int64_t now() const { return options_.clock->unix_now(); }
  void transition(AgentState to, const std::string& reason);
  void announce_write(const std::filesystem::path& path) const;
  /// An event for GET /v1/watch. Its `owners` (the uid/container/workload fields of an
  /// api::Event) and admins see it whole; with no owner it is device-wide, and every other
  /// watcher sees it without its detail (reasons may name other workloads or an admin's words).
  void publish(std::string kind, const std::string& detail, api::Event owners = {});
  Status enroll_locked();
  /// One attestation round; on a pass the device token and the bound signer are replaced.
  Status attest_locked();
  /// Re-attest from any state, handling unreachable issuer (degraded), refusals (revoked) and
  /// an unknown device (re-enroll).
  Status reattest_locked(const std::string& why);
  void revoke_all_locked(const std::string& reason, bool report);
  void report_revocation_locked(const std::string& reason, std::vector<std::string> jtis);
  Result<protocol::TokenResponse> fetch_token_locked(const os::Selectors& caller,
                                                     const TokenRequest& request,
                                                     TokenFormat format, std::uint32_t ttl);
  Result<protocol::ImaLog> read_ima_locked() const;
  AgentStatus status_locked() const;
  [[nodiscard]] bool may_serve_cached() const;

  AgentOptions options_;
  tpm::Tpm tpm_;
  StateStore store_;

  mutable std::mutex mu_;
  Lifecycle lifecycle_;
  std::string reason_;
  std::int64_t since_ = 0;
  bool announced_ready_ = false;
  std::optional<EnrollmentRecord> enrollment_;
  std::optional<tpm::BindingKey> binding_key_;
  Bytes device_token_;
  std::int64_t device_token_iat_ = 0;
  std::int64_t device_token_exp_ = 0;
  std::uint64_t ima_offset_ = 0;
  std::unique_ptr<SessionKey> session_key_;
  std::unique_ptr<TpmBindingSigner> tpm_signer_;  ///< proof_mode = tpm
  token::Signer* proof_signer_ = nullptr;         ///< session_key_ or tpm_signer_
  TokenCache cache_;
  Backoff backoff_;
  std::int64_t next_retry_ = 0;  ///< unix seconds; 0 = no retry pending
  bool auto_reattest_ = false;   ///< revoked by posture: re-attest with backoff
  std::uint64_t attestations_ = 0;
};

}  // namespace warden::agent
