#include "agent/api/refusal_budget.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace warden::agent::api {

RefusalBudget::RefusalBudget(WorkloadService& inner, RefusalBudgetOptions options,
                             std::function<TimePoint()> now)
    : inner_(inner),
      options_(options),
      now_(std::move(now)),
      buckets_({static_cast<double>(options.burst), static_cast<double>(options.per_second),
                options.max_uids, static_cast<double>(options.burst)},
               now_) {}

std::optional<Error> RefusalBudget::check(uid_t uid) {
  if (!buckets_.exhausted(std::to_string(uid))) return std::nullopt;
  const TimePoint now = now_();
  std::lock_guard lock(mu_);
  ++stats_.over_budget;
  ++unlogged_;
  if (unlogged_uids_.size() < 8 &&
      std::find(unlogged_uids_.begin(), unlogged_uids_.end(), uid) == unlogged_uids_.end()) {
    unlogged_uids_.push_back(uid);
  }
  if (now - logged_ >= options_.log_interval) {
    std::string uids;
    for (const uid_t u : unlogged_uids_) uids += (uids.empty() ? "" : ", ") + std::to_string(u);
    spdlog::warn(
        "local api: {} request(s) answered 429 since the last report: their uid spent its budget "
        "of refused requests (api.refusal_burst, api.refusals_per_second); uids {}",
        unlogged_, uids);
    unlogged_ = 0;
    unlogged_uids_.clear();
    logged_ = now;
  }
  return Error{ErrorCode::kLimitExceeded,
               "uid " + std::to_string(uid) + ": too many refused requests; retry in a few seconds",
               0, 0};
}

template <class T>
Result<T> RefusalBudget::limited(uid_t uid, const std::function<Result<T>()>& call) {
  if (auto over = check(uid)) return fail(std::move(*over));
  auto r = call();
  if (!r) {
    // Concurrent requests of one uid may all have passed check(): each is charged (max_debt).
    (void)buckets_.charge(std::to_string(uid));
    std::lock_guard lock(mu_);
    ++stats_.refused;
  }
  return r;
}

Result<TokenResponse> RefusalBudget::token(const os::Selectors& caller,
                                           const TokenRequest& request) {
  return limited<TokenResponse>(caller.uid, [&] { return inner_.token(caller, request); });
}

Result<ProofResponse> RefusalBudget::proof(const os::Selectors& caller,
                                           const ProofRequest& request) {
  return limited<ProofResponse>(caller.uid, [&] { return inner_.proof(caller, request); });
}

Result<SecretBytes> RefusalBudget::secret(const os::Selectors& caller, const std::string& name) {
  return limited<SecretBytes>(caller.uid, [&] { return inner_.secret(caller, name); });
}

RefusalBudget::Stats RefusalBudget::stats() const {
  std::lock_guard lock(mu_);
  Stats s = stats_;
  s.buckets = buckets_.size();
  return s;
}

}  // namespace warden::agent::api
