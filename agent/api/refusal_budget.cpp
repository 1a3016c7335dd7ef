#include "agent/api/refusal_budget.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

namespace warden::agent::api {

RefusalBudget::RefusalBudget(WorkloadService& inner, RefusalBudgetOptions options,
                             std::function<TimePoint()> now)
    : inner_(inner), options_(options), now_(std::move(now)) {}

void RefusalBudget::refill(Bucket& b, TimePoint now) const {
  const std::chrono::duration<double> elapsed = now - b.refilled;
  b.tokens = std::min(static_cast<double>(options_.burst),
                      b.tokens + elapsed.count() * static_cast<double>(options_.per_second));
  b.refilled = now;
}

RefusalBudget::Bucket* RefusalBudget::find_locked(uid_t uid, TimePoint now) {
  Bucket* b = nullptr;
  if (const auto it = buckets_.find(uid); it != buckets_.end()) {
    b = &it->second;
  } else if (overflow_used_ && buckets_.size() >= options_.max_uids) {
    b = &overflow_;
  }
  if (b != nullptr) refill(*b, now);
  return b;
}

std::optional<Error> RefusalBudget::check(uid_t uid) {
  if (tracked_.load(std::memory_order_relaxed) == 0) return std::nullopt;
  const TimePoint now = now_();
  std::lock_guard lock(mu_);
  const Bucket* b = find_locked(uid, now);
  if (b == nullptr) return std::nullopt;
  if (b->tokens >= static_cast<double>(options_.burst)) {
    // Refilled to full: the bucket holds nothing a fresh one would not.
    if (b == &overflow_) {
      overflow_used_ = false;
    } else {
      buckets_.erase(uid);
    }
    tracked_.store(buckets_.size() + (overflow_used_ ? 1 : 0), std::memory_order_relaxed);
    return std::nullopt;
  }
  if (b->tokens >= 1.0) return std::nullopt;
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

void RefusalBudget::charge(uid_t uid) {
  const TimePoint now = now_();
  std::lock_guard lock(mu_);
  ++stats_.refused;
  Bucket* b = find_locked(uid, now);
  if (b == nullptr) {
    if (buckets_.size() >= options_.max_uids) {
      // Buckets that refilled to full hold nothing worth keeping: they make room first.
      const auto burst = static_cast<double>(options_.burst);
      for (auto it = buckets_.begin(); it != buckets_.end();) {
        refill(it->second, now);
        it = it->second.tokens >= burst ? buckets_.erase(it) : std::next(it);
      }
    }
    if (buckets_.size() < options_.max_uids) {
      b = &buckets_.emplace(uid, Bucket{static_cast<double>(options_.burst), now}).first->second;
    } else {
      // Still full: the newcomers share one bucket, so the map stays bounded whatever the number
      // of uids an attacker controls.
      if (!overflow_used_) overflow_ = Bucket{static_cast<double>(options_.burst), now};
      overflow_used_ = true;
      b = &overflow_;
    }
  }
  // Concurrent requests of one uid may all have passed check(): the debt is kept (down to one
  // burst) and paid back by waiting.
  b->tokens = std::max(b->tokens - 1.0, -static_cast<double>(options_.burst));
  stats_.buckets = buckets_.size();
  tracked_.store(buckets_.size() + (overflow_used_ ? 1 : 0), std::memory_order_relaxed);
}

template <class T>
Result<T> RefusalBudget::limited(uid_t uid, const std::function<Result<T>()>& call) {
  if (auto over = check(uid)) return fail(std::move(*over));
  auto r = call();
  if (!r) charge(uid);
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
