#pragma once
// The agent core: enrollment, attestation, the device token, workload tokens and proofs, sealed
// secrets, revocation and posture reactions (ARCHITECTURE.md, "Trust flows"). Transport-free:
// the local API calls it through WorkloadService, the daemon's loop through start()/tick(), the
// posture monitor through apply().
//
// Locking: mu_ guards the agent's state (every member below it) and is never held while waiting
// on the issuer: a round trip copies what it needs under mu_, runs unlocked, and commits under
// mu_ again only if epoch_ has not moved (no revocation, posture change or newer attestation in
// between). Attestation rounds run one at a time; callers arriving during one wait for the next
// and share it. TPM commands serialise on the TPM's own lock (tpm::Tpm, shared with the posture
// monitor's probes), taken after mu_ where both are held, never before.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "agent/agent_rounds.h"
#include "agent/api/event_bus.h"
#include "agent/api/workload_service.h"
#include "agent/config/agent_config.h"
#include "agent/issuer_client.h"
#include "agent/lifecycle.h"
#include "agent/posture/posture.h"
#include "agent/revocation_reports.h"
#include "agent/session_key.h"
#include "agent/state_store.h"
#include "agent/token_cache.h"
#include "platform/base/clock.h"
#include "platform/os/service_notify.h"
#include "platform/tpm/tpm.h"

namespace warden::agent {

struct AgentOptions {
  AgentConfig config;
  IssuerApi* issuer = nullptr;                    ///< required; outlives the agent
  const Clock* clock = nullptr;                   ///< required
  Random* random = nullptr;                       ///< required
  api::EventBus* bus = nullptr;                   ///< optional: events for GET /v1/watch
  const os::ServiceNotifier* notifier = nullptr;  ///< optional: STATUS=/READY=1
  /// Called (under the agent's lock) before the agent writes or removes a file of its state
  /// dir, so that the posture monitor does not take it for tampering.
  std::function<void(const std::filesystem::path&)> before_state_write;
  /// The image of a running container as the posture monitor recorded it at the container's
  /// start, from the runtime's own records (never the container's word); null or nullopt: the
  /// image is unknown, and rules with an image selector do not match.
  std::function<std::optional<posture::ImageInfo>(std::string_view container_id)> image_of;
  std::chrono::milliseconds retry_base{1000};  ///< backoff of re-attestation retries
  std::chrono::milliseconds retry_max{5 * 60 * 1000};
  ReportQueue::Options reports;  ///< revocation reports: queue bound, retry backoff
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
  /// (jittered exponential backoff), drops expired tokens, retries the revocation reports the
  /// issuer could not take (their own backoff, 0.5 s doubling to 30 s). Returns the delay until
  /// the next call is useful.
  std::chrono::milliseconds tick();
  /// Applies a classified posture change (the architecture's table): kRevokeWorkload revokes
  /// that container's tokens, kReattest re-attests (a refusal revokes everything), kRevokeAll
  /// revokes everything, wipes keys and secrets, then re-attests with backoff. react() then
  /// follow_up().
  void apply(const posture::Change& change);
  /// The local half of apply(), which never waits on the issuer: tokens withdrawn, the state
  /// changed (serving -> reattesting for kReattest), the issuer's part queued for follow_up().
  void react(const posture::Change& change);
  /// The issuer's half of what react() queued: revocation reports, the re-attestation.
  void follow_up();
  /// Sends the revocation reports that are due, from the calling thread; never starts or waits
  /// for an attestation round. follow_up() and tick() send them too, but after whatever round
  /// their thread is running: a thread of the daemon's calling this after react() keeps a
  /// report from waiting behind one.
  void deliver_reports();
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
  /// The agent's TPM: copies share its one connection and lock (the posture monitor's probes).
  [[nodiscard]] const tpm::Tpm& tpm() const { return tpm_; }
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
  /// Stores the issuer's approved policy when it checks out (mu_ held).
  void keep_approval(ByteSpan approval);
  /// Reseals a version-1 secret to the sealing authority (called without mu_ held).
  void migrate_secret(const std::string& name, const SealedSecret& old, ByteSpan authority,
                      const SecretBytes& value);
  explicit Agent(AgentOptions options);

  struct Attested;  ///< a passed attestation round, not yet committed

  std::int64_t now() const { return options_.clock->unix_now(); }
  void transition(AgentState to, const std::string& reason);
  void announce_write(const std::filesystem::path& path) const;
  /// An event for GET /v1/watch. Its `owners` (the uid/container/workload fields of an
  /// api::Event) and admins see it whole; with no owner it is device-wide, and every other
  /// watcher sees it without its detail (reasons may name other workloads or an admin's words).
  void publish(std::string kind, const std::string& detail, api::Event owners = {});
  /// Runs (or joins) an attestation round that starts after this call; `lock` holds mu_ and is
  /// released during TPM commands and round trips.
  Status reattest(std::unique_lock<std::mutex>& lock, const std::string& why);
  /// One round from any state, handling unreachable issuer (degraded), refusals (revoked) and
  /// an unknown device (re-enroll).
  Status round(std::unique_lock<std::mutex>& lock, const std::string& why);
  Status enroll(std::unique_lock<std::mutex>& lock);
  Result<Attested> attest(std::unique_lock<std::mutex>& lock);
  Status commit(Attested attested);
  /// Withdraws what proves this device: moves the epoch, drops cached tokens, the signers (a
  /// session key no call is signing with is wiped now) and the device token.
  void drop_credentials_locked();
  void revoke_all_locked(const std::string& reason, bool report);
  void queue_report_locked(const std::string& reason, std::vector<std::string> jtis);
  /// Sends the queued reports that are due (all of them with `all`, before a round that may
  /// replace the binding key they are signed with); `lock` holds mu_ and is released meanwhile.
  void send_reports(std::unique_lock<std::mutex>& lock, bool all);
  /// One attempt, outside mu_ (logs what it delivers or drops); the error to retry after (or,
  /// kBadSignature, to decide on under mu_), or nullopt when the report is done with.
  std::optional<Error> send_report(ReportQueue::Attempt& attempt);
  /// A report the issuer refused for its key: queued again signed by the current binding key
  /// (true), or dropped with a warning.
  bool resign_or_drop_locked(ReportQueue::Attempt attempt, const Error& refusal);
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
  // Shared with calls signing outside mu_; the key is freed (cleansed) with its last owner.
  std::shared_ptr<SessionKey> session_key_;
  std::shared_ptr<TpmBindingSigner> tpm_signer_;  ///< proof_mode = tpm
  std::shared_ptr<token::Signer> proof_signer_;   ///< session_key_ or tpm_signer_
  TokenCache cache_;
  Backoff backoff_;
  std::int64_t next_retry_ = 0;  ///< unix seconds; 0 = no retry pending
  bool auto_reattest_ = false;   ///< revoked, retrying with backoff; an admin's revoke clears it
  /// The newest revocation-report timestamp sent: each report gets a later one (send_report).
  std::atomic<std::uint64_t> last_report_ts_ = 0;
  std::uint64_t attestations_ = 0;
  /// Moves whenever the device token, the signer or the posture it was attested for changes.
  std::uint64_t epoch_ = 0;
  SharedRounds rounds_;
  ReportQueue reports_;  ///< sent by follow_up() and revoke(), retried by tick()
  std::optional<std::string> pending_reattest_;  ///< for follow_up()
};

}  // namespace warden::agent
