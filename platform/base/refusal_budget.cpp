#include "platform/base/refusal_budget.h"

#include <algorithm>
#include <iterator>

namespace warden {

RefusalBudget::RefusalBudget(Options options, Now now) : options_(options), now_(std::move(now)) {}

void RefusalBudget::refill(Bucket& b, TimePoint now) const {
  if (now <= b.refilled) return;
  const double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
  b.refilled = now;
}

bool RefusalBudget::idle(const Bucket& b) const {
  // Refilled and nothing to report: the bucket holds nothing a fresh one would not.
  return b.suppressed == 0 && b.tokens >= options_.burst;
}

void RefusalBudget::count_locked() {
  buckets_in_use_.store(buckets_.size(), std::memory_order_relaxed);
}

RefusalBudget::Bucket& RefusalBudget::bucket_locked(std::string_view key, TimePoint now,
                                                    std::string& charged) {
  charged = std::string(key);
  if (auto it = buckets_.find(charged); it != buckets_.end()) {
    refill(it->second, now);
    return it->second;
  }
  if (buckets_.size() >= options_.max_keys) {
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      refill(it->second, now);
      it = idle(it->second) ? buckets_.erase(it) : std::next(it);
    }
    // Still full: newcomers share one bucket, so the map stays bounded whatever the number of
    // keys an attacker controls.
    if (buckets_.size() >= options_.max_keys) charged = std::string(kOverflowKey);
  }
  auto [it, inserted] = buckets_.try_emplace(charged);
  if (inserted) {
    it->second.tokens = options_.burst;
    it->second.refilled = now;
    count_locked();
  } else {
    refill(it->second, now);
  }
  return it->second;
}

RefusalBudget::Charge RefusalBudget::charge(std::string_view key) {
  const TimePoint now = now_();
  std::lock_guard lock(mu_);
  Charge out;
  Bucket& b = bucket_locked(key, now, out.key);
  if (b.tokens >= 1) {
    b.tokens -= 1;
    out.record = true;
    out.suppressed = b.suppressed;
    if (b.suppressed > 0) {
      out.suppressed_for =
          std::chrono::duration_cast<std::chrono::seconds>(now - b.first_suppressed);
    }
    b.suppressed = 0;
    return out;
  }
  if (options_.max_debt > 0) b.tokens = std::max(b.tokens - 1, -options_.max_debt);
  if (b.suppressed++ == 0) b.first_suppressed = now;
  return out;
}

bool RefusalBudget::exhausted(std::string_view key) {
  if (buckets_in_use_.load(std::memory_order_relaxed) == 0) return false;
  const TimePoint now = now_();
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end() && buckets_.size() >= options_.max_keys) {
    it = buckets_.find(std::string(kOverflowKey));
  }
  if (it == buckets_.end()) return false;
  refill(it->second, now);
  if (idle(it->second)) {
    buckets_.erase(it);
    count_locked();
    return false;
  }
  return it->second.tokens < 1;
}

std::vector<RefusalBudget::Summary> RefusalBudget::drain() {
  const TimePoint now = now_();
  std::lock_guard lock(mu_);
  std::vector<Summary> out;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    Bucket& b = it->second;
    refill(b, now);
    if (b.suppressed > 0) {
      out.push_back({it->first, b.suppressed,
                     std::chrono::duration_cast<std::chrono::seconds>(now - b.first_suppressed)});
      b.suppressed = 0;
    }
    it = b.tokens >= options_.burst ? buckets_.erase(it) : std::next(it);
  }
  count_locked();
  return out;
}

std::size_t RefusalBudget::size() const {
  std::lock_guard lock(mu_);
  return buckets_.size() - buckets_.count(std::string(kOverflowKey));
}

}  // namespace warden
