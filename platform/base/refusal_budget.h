#pragma once
// How many refusals a key (a uid, a client address, a device) may have: a token bucket per key in
// a bounded map. A flood of refused requests must cost neither a round trip (the agent's local
// API), nor an audit row each (the issuer), nor unbounded memory. What is over the budget is
// counted per key, for one summary instead of a line each.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace warden {

/// Thread-safe (one mutex, `mu_`). Time comes from the injected monotonic `Now`.
class RefusalBudget {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  using Now = std::function<TimePoint()>;
  struct Options {
    double burst = 20;            ///< refusals at once before the rate applies
    double per_second = 0.2;      ///< refill rate
    std::size_t max_keys = 4096;  ///< beyond it, new keys share one bucket (kOverflowKey)
    /// How far below empty a charge takes a bucket. Requests of one key that all passed
    /// exhausted() before the first was refused are all charged, and the debt is paid back by
    /// waiting. 0: a charge of an empty bucket is only counted as suppressed.
    double max_debt = 0;
  };
  /// The bucket shared by keys that found the map full.
  static constexpr std::string_view kOverflowKey = "(other)";

  /// What to do with one refusal.
  struct Charge {
    bool record = false;  ///< within the budget: record (or serve) it
    /// Set when record: refusals suppressed before this one, to report first (0: none).
    std::uint64_t suppressed = 0;
    std::chrono::seconds suppressed_for{0};  ///< since the first of them
    std::string key;  ///< the key charged (kOverflowKey when the map was full)
  };
  /// Refusals suppressed for a key, taken by drain().
  struct Summary {
    std::string key;
    std::uint64_t suppressed = 0;
    std::chrono::seconds over{0};
  };

  explicit RefusalBudget(
      Options options, Now now = [] { return std::chrono::steady_clock::now(); });

  /// Charges one refusal to `key`.
  Charge charge(std::string_view key);
  /// True when `key` (or, for a key without a bucket while the map is full, the overflow
  /// bucket it would be charged to) has less than one refusal left. Does not charge. Takes no
  /// lock while no key has a bucket.
  bool exhausted(std::string_view key);
  /// Takes the suppressed counts of every key (for a periodic summary), and forgets idle keys.
  std::vector<Summary> drain();
  /// Keys with a bucket of their own (the overflow bucket not counted).
  [[nodiscard]] std::size_t size() const;

 private:
  struct Bucket {
    double tokens = 0;
    TimePoint refilled;
    std::uint64_t suppressed = 0;
    TimePoint first_suppressed;
  };
  Bucket& bucket_locked(std::string_view key, TimePoint now, std::string& charged);
  void refill(Bucket& b, TimePoint now) const;
  [[nodiscard]] bool idle(const Bucket& b) const;
  void count_locked();

  const Options options_;
  const Now now_;
  std::atomic<std::size_t> buckets_in_use_{0};  ///< buckets_.size(), for the lock-free check
  mutable std::mutex mu_;                       // guards buckets_
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace warden
