#pragma once
// The one in-memory cache of the issuer: entries expire by the injected Clock (tests advance a
// FakeClock instead of sleeping), and a value read from the store while this process evicted
// anything is not stored, since it may predate the write that evicted (the eviction epoch).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <utility>

#include "platform/base/clock.h"

namespace warden::issuer {

template <class Key, class Value>
class TtlCache {
 public:
  using TimePoint = std::chrono::system_clock::time_point;
  using Duration = std::chrono::system_clock::duration;

  struct Options {
    /// Lifetime of an entry put without its own expiry.
    Duration ttl = std::chrono::seconds(1);
    /// At this many entries a put first drops the expired ones, then everything.
    std::size_t max_entries = 1024;
  };

  /// What find() saw: the value when fresh, and the epoch and time that a put() of a value
  /// loaded after this miss must quote.
  struct Lookup {
    std::optional<Value> value;
    std::uint64_t epoch = 0;
    TimePoint at;
  };

  TtlCache(const Clock& clock, Options options) : clock_(clock), options_(options) {}

  /// The entry when it was put at or before now and has not expired (a clock set back makes it
  /// stale rather than fresh for longer).
  Lookup find(const Key& key) const {
    const TimePoint now = clock_.now();
    std::lock_guard lock(mu_);
    Lookup out{std::nullopt, epoch_, now};
    const auto it = entries_.find(key);
    if (it != entries_.end() && fresh(it->second, now)) out.value = it->second.value;
    return out;
  }

  /// The entry whatever its age (the fallback when the store has nothing newer).
  std::optional<Value> last(const Key& key) const {
    std::lock_guard lock(mu_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    return it->second.value;
  }

  /// Stores `value`, loaded after `seen`, for the ttl from `seen.at`. Dropped when an eviction
  /// happened since `seen`, or when `keep(cached)` says the cached value wins (e.g. is newer).
  template <class Keep>
  bool put(const Key& key, Value value, const Lookup& seen, Keep keep) {
    return put_until(key, std::move(value), seen, seen.at + options_.ttl, keep);
  }
  bool put(const Key& key, Value value, const Lookup& seen) {
    return put(key, std::move(value), seen, [](const Value&) { return false; });
  }

  /// put() with the entry's own expiry instead of the ttl.
  template <class Keep>
  bool put_until(const Key& key, Value value, const Lookup& seen, TimePoint expires, Keep keep) {
    std::lock_guard lock(mu_);
    if (seen.epoch != epoch_) return false;
    auto it = entries_.find(key);
    if (it != entries_.end()) {
      if (keep(it->second.value)) return false;
      it->second = {std::move(value), seen.at, expires};
      return true;
    }
    if (entries_.size() >= options_.max_entries) make_room(seen.at);
    entries_.emplace(key, Entry{std::move(value), seen.at, expires});
    return true;
  }
  bool put_until(const Key& key, Value value, const Lookup& seen, TimePoint expires) {
    return put_until(key, std::move(value), seen, expires, [](const Value&) { return false; });
  }

  /// Makes the entry stale and every load in flight unstorable (this process wrote it).
  void evict(const Key& key) {
    std::lock_guard lock(mu_);
    entries_.erase(key);
    ++epoch_;
  }

  /// evict() for a write that changes what every key would load, keeping the values for last().
  void invalidate_all() {
    std::lock_guard lock(mu_);
    for (auto& [key, entry] : entries_) entry.expires = entry.loaded;
    ++epoch_;
  }

  [[nodiscard]] std::size_t size() const {
    std::lock_guard lock(mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    Value value;
    TimePoint loaded;
    TimePoint expires;
  };

  static bool fresh(const Entry& e, TimePoint now) { return e.loaded <= now && now < e.expires; }

  void make_room(TimePoint now) {
    std::erase_if(entries_, [&](const auto& kv) { return !fresh(kv.second, now); });
    if (entries_.size() >= options_.max_entries) entries_.clear();
  }

  const Clock& clock_;
  const Options options_;
  mutable std::mutex mu_;  // guards entries_ and epoch_
  std::unordered_map<Key, Entry> entries_;
  std::uint64_t epoch_ = 0;  // bumped by every eviction
};

}  // namespace warden::issuer
