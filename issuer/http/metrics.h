#pragma once
// Prometheus counters of the HTTPS server (GET /metrics, text exposition format 0.0.4). Every
// method is thread-safe; one mutex guards the maps (a few hundred nanoseconds per request).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace warden::issuer::http {

class Metrics {
 public:
  /// One finished request: its route pattern ("/v1/enroll/{id}/activate", "unmatched"), status
  /// and wall time from the first header byte to the response written.
  void request(std::string_view route, unsigned status, std::chrono::microseconds latency);
  void attest_verdict(std::string_view verdict);  ///< "pass" or "fail"
  void token_issued();
  void connection_opened() { open_connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { open_connections_.fetch_sub(1, std::memory_order_relaxed); }
  [[nodiscard]] std::int64_t open_connections() const {
    return open_connections_.load(std::memory_order_relaxed);
  }
  void connection_refused() { refused_connections_.fetch_add(1, std::memory_order_relaxed); }

  /// The text exposition of every metric.
  [[nodiscard]] std::string render() const;

  /// Upper bounds (seconds) of the latency histogram buckets; +Inf is implicit.
  static constexpr std::array<double, 12> kBuckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                   0.05,   0.1,   0.25,   0.5,   1.0,  2.5};

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};  // non-cumulative
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;  // guards the maps below
  std::map<std::pair<std::string, unsigned>, std::uint64_t> requests_;
  std::map<std::string, Histogram> latency_;
  std::map<std::string, std::uint64_t> verdicts_;
  std::uint64_t tokens_ = 0;
  std::atomic<std::int64_t> open_connections_{0};
  std::atomic<std::uint64_t> refused_connections_{0};
};

}  // namespace warden::issuer::http
