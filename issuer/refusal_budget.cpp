#include "issuer/refusal_budget.h"

#include <algorithm>
#include <iterator>

namespace warden::issuer {

void RefusalBudget::refill(Bucket& b, Clock::time_point now) const {
  if (now <= b.refilled) return;
  const double elapsed = std::chrono::duration<double>(now - b.refilled).count();
  b.tokens = std::min(options_.burst, b.tokens + elapsed * options_.per_second);
  b.refilled = now;
}

RefusalBudget::Bucket& RefusalBudget::bucket(std::string_view key, Clock::time_point now,
                                             std::string& charged) {
  charged = std::string(key);
  if (auto it = buckets_.find(charged); it != buckets_.end()) {
    refill(it->second, now);
    return it->second;
  }
  if (buckets_.size() >= options_.max_keys) {
    // Full buckets with nothing to report hold no information: forget them first.
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      refill(it->second, now);
      const bool idle = it->second.suppressed == 0 && it->second.tokens >= options_.burst;
      it = idle ? buckets_.erase(it) : std::next(it);
    }
    if (buckets_.size() >= options_.max_keys) charged = std::string(kOverflowKey);
  }
  auto [it, inserted] = buckets_.try_emplace(charged);
  if (inserted) {
    it->second.tokens = options_.burst;
    it->second.refilled = now;
  } else {
    refill(it->second, now);
  }
  return it->second;
}

RefusalBudget::Charge RefusalBudget::charge(std::string_view key, Clock::time_point now) {
  std::lock_guard lock(mu_);
  Charge out;
  Bucket& b = bucket(key, now, out.key);
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
  if (b.suppressed++ == 0) b.first_suppressed = now;
  return out;
}

bool RefusalBudget::exhausted(std::string_view key, Clock::time_point now) {
  std::lock_guard lock(mu_);
  auto it = buckets_.find(std::string(key));
  if (it == buckets_.end()) return false;
  refill(it->second, now);
  return it->second.tokens < 1;
}

std::vector<RefusalBudget::Summary> RefusalBudget::drain(Clock::time_point now) {
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
    if (b.tokens >= options_.burst) {
      it = buckets_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

std::string quote_untrusted(std::string_view text, std::size_t max) {
  constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  const std::string_view kept = text.substr(0, max);
  for (const char c : kept) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  out += '"';
  if (kept.size() < text.size()) out += "…(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace warden::issuer
