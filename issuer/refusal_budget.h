#pragma once
// How many refusals a key (a client address, a device) may cause to be recorded: a token bucket
// per key in a bounded map. A flood of refused requests must cost the issuer neither an audit
// row each nor unbounded memory; what is over the budget is counted, and reported once as a
// summary (issuer/service.cpp, issuer/http/router.cpp).

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace warden::issuer {

class RefusalBudget {
 public:
  using Clock = std::chrono::steady_clock;
  struct Options {
    double burst = 20;            ///< refusals recorded at once before the rate applies
    double per_second = 0.2;      ///< refill rate
    std::size_t max_keys = 4096;  ///< beyond it, new keys share one bucket (kOverflowKey)
  };
  /// The bucket shared by keys that found the map full.
  static constexpr std::string_view kOverflowKey = "(other)";

  /// What to do with one refusal.
  struct Charge {
    bool record = false;  ///< within the budget: record it
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

  explicit RefusalBudget(Options options) : options_(options) {}

  /// Charges one refusal to `key`.
  Charge charge(std::string_view key, Clock::time_point now);
  /// True when a refusal for `key` now would not be recorded (does not charge).
  bool exhausted(std::string_view key, Clock::time_point now);
  /// Takes the suppressed counts of every key (for a periodic summary), and forgets idle keys.
  std::vector<Summary> drain(Clock::time_point now);

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point refilled;
    std::uint64_t suppressed = 0;
    Clock::time_point first_suppressed;
  };
  Bucket& bucket(std::string_view key, Clock::time_point now, std::string& charged);
  void refill(Bucket& b, Clock::time_point now) const;

  Options options_;
  std::mutex mu_;  // guards buckets_
  std::unordered_map<std::string, Bucket> buckets_;
};

/// An untrusted string as an audit record may hold it: at most `max` bytes, control and
/// non-ASCII bytes as \xNN, in double quotes, with "…(N bytes)" when cut.
std::string quote_untrusted(std::string_view text, std::size_t max = 128);

}  // namespace warden::issuer
