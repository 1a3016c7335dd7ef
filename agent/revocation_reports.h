#pragma once
// The revocation reports the agent owes the issuer (docs/posture.md, "Revocation reports"):
// queued when a change withdraws tokens, sent at once, and kept and retried with jittered
// exponential backoff while the issuer cannot take them. Kept in memory only: an agent that
// restarts attests again, and the issuer learns the posture from that attestation.

#include <chrono>
#include <cstddef>
#include <list>
#include <optional>
#include <vector>

#include "agent/issuer_client.h"
#include "attest/protocol/messages.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"
#include "platform/tpm/tpm.h"

namespace warden::agent {

/// A report: the request (its timestamp and signature are set at each attempt) and the binding
/// key it was queued with, which signs every attempt.
struct RevocationReport {
  protocol::RevokeRequest request;
  tpm::BindingKey key;
};

enum class ReportOutcome {
  kDelivered,  ///< applied, or kReplay: an attempt before was applied
  kRetry,      ///< the issuer unreachable or failing (5xx), or the timestamp outside its window
  kDrop,       ///< refused for good: bad signature, unknown key or device, a jti not its own
};

/// What an error from IssuerApi::revoke() means for the report.
ReportOutcome classify_report_error(const Error& error);
/// What a failure to sign it with its binding key means: kRetry when the TPM cannot be reached
/// (or the TSS failed on the way), kDrop when the TPM itself refuses (the key no longer loads:
/// the TPM was cleared).
ReportOutcome classify_signing_error(const Error& error);

/// Not thread-safe: guarded by its owner's lock (the agent's mu_). Reports taken out to be sent
/// count as pending until they are given back with retry() or finish().
class ReportQueue {
 public:
  struct Options {
    std::size_t capacity = 256;  ///< queued reports; beyond, merged into one revoke-all
    std::chrono::milliseconds retry_base{500};
    std::chrono::milliseconds retry_max{30'000};
  };
  struct Attempt {
    RevocationReport report;
    unsigned failures = 0;
    Backoff backoff;
    std::chrono::system_clock::time_point due;
  };

  ReportQueue(const Clock& clock, Random& random, Options options);

  /// Due at once. A full queue merges the queued reports of the same device and key with this
  /// one into a report revoking all of the device's tokens (logged), so no revocation is lost;
  /// when none shares them, the oldest queued report is dropped (logged).
  void push(RevocationReport report);
  /// The reports due now (every queued one with `all`), oldest first.
  [[nodiscard]] std::vector<Attempt> take(bool all);
  /// Queues a report again after a transient failure; returns the delay before its next attempt.
  std::chrono::milliseconds retry(Attempt attempt);
  /// Queues a report again, due at once (signed by another key now), its backoff unchanged.
  void resubmit(Attempt attempt);
  /// A report taken out was delivered or dropped.
  void finish();
  /// Queued plus taken out.
  [[nodiscard]] std::size_t pending() const { return queued_.size() + out_; }
  /// Until the earliest queued report is due (zero if one is); nullopt when none is queued.
  [[nodiscard]] std::optional<std::chrono::milliseconds> next_due() const;
  void clear();

 private:
  const Clock& clock_;
  Random& random_;
  Options options_;
  std::list<Attempt> queued_;  // a list: Attempt holds a Backoff, which is not assignable
  std::size_t out_ = 0;
};

}  // namespace warden::agent
