#pragma once
// A budget of refused requests per uid, in front of the agent's WorkloadService. A refused token
// request costs the agent an issuer round trip under its lock: a uid that floods the socket with
// requests it is refused would slow every other workload's cached answers. Each uid that is
// refused gets a small token bucket (refilled at a steady rate); once it is empty, that uid's
// token, proof and secret requests are answered 429 at once, without reaching the agent or the
// issuer, until the bucket refills. Requests that succeed cost nothing, and a uid that was never
// refused has no bucket at all. Over-budget answers are logged once per interval with their
// count, never one line each.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <vector>

#include "agent/api/workload_service.h"
#include "platform/base/refusal_budget.h"

namespace warden::agent::api {

struct RefusalBudgetOptions {
  unsigned burst = 20;          ///< refusals a uid may have in a row (config api.refusal_burst)
  unsigned per_second = 5;      ///< refill rate (config api.refusals_per_second)
  std::size_t max_uids = 4096;  ///< buckets kept; beyond, new uids share one overflow bucket
  std::chrono::seconds log_interval{10};
};

/// Forwards to `inner`; token(), proof() and secret() are charged to the caller's uid when they
/// fail (any error answer) and refused with kLimitExceeded (429) when the uid's budget is spent.
/// Admin calls pass through. Thread-safe (one mutex, `mu_`, never held while `inner` runs).
class RefusalBudget final : public WorkloadService {
 public:
  using TimePoint = ::warden::RefusalBudget::TimePoint;
  /// `now` is the monotonic time source (tests pass their own).
  RefusalBudget(
      WorkloadService& inner, RefusalBudgetOptions options,
      std::function<TimePoint()> now = [] { return std::chrono::steady_clock::now(); });

  Result<TokenResponse> token(const os::Selectors& caller, const TokenRequest& request) override;
  Result<ProofResponse> proof(const os::Selectors& caller, const ProofRequest& request) override;
  Result<SecretBytes> secret(const os::Selectors& caller, const std::string& name) override;
  Result<AgentStatus> status() override { return inner_.status(); }
  Status seal_secret(const os::Selectors& caller, const SealRequest& request) override {
    return inner_.seal_secret(caller, request);
  }
  Status revoke(const os::Selectors& caller, const std::string& reason) override {
    return inner_.revoke(caller, reason);
  }
  Result<AgentStatus> reattest(const os::Selectors& caller) override {
    return inner_.reattest(caller);
  }

  struct Stats {
    std::uint64_t over_budget = 0;  ///< requests answered 429 by the budget
    std::uint64_t refused = 0;      ///< refusals from the agent charged to a bucket
    std::size_t buckets = 0;        ///< uids with a bucket now
  };
  [[nodiscard]] Stats stats() const;

 private:
  /// nullopt: forward the call. Otherwise the 429 error to answer.
  std::optional<Error> check(uid_t uid);
  template <class T>
  Result<T> limited(uid_t uid, const std::function<Result<T>()>& call);

  WorkloadService& inner_;
  const RefusalBudgetOptions options_;
  const std::function<TimePoint()> now_;
  ::warden::RefusalBudget buckets_;  // per uid; has its own lock
  mutable std::mutex mu_;            // guards everything below
  Stats stats_;
  std::uint64_t unlogged_ = 0;        ///< over-budget answers since the last log line
  std::vector<uid_t> unlogged_uids_;  ///< a few of their uids, for that line
  TimePoint logged_{};
};

}  // namespace warden::agent::api
