#include "issuer/http/metrics.h"

#include <fmt/format.h>

namespace warden::issuer::http {

void Metrics::request(std::string_view route, unsigned status, std::chrono::microseconds latency) {
  const double seconds = static_cast<double>(latency.count()) / 1e6;
  std::lock_guard lock(mutex_);
  ++requests_[{std::string(route), status}];
  auto& h = latency_[std::string(route)];
  ++h.count;
  h.sum += seconds;
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) {
      ++h.counts[i];
      break;
    }
  }
}

void Metrics::attest_verdict(std::string_view verdict) {
  std::lock_guard lock(mutex_);
  ++verdicts_[std::string(verdict)];
}

void Metrics::token_issued() {
  std::lock_guard lock(mutex_);
  ++tokens_;
}

std::string Metrics::render() const {
  std::string out;
  auto append = [&out](std::string_view s) { out.append(s); };
  std::lock_guard lock(mutex_);
  append("# HELP warden_issuer_http_requests_total HTTP requests by route and status.\n");
  append("# TYPE warden_issuer_http_requests_total counter\n");
  for (const auto& [key, n] : requests_) {
    out += fmt::format("warden_issuer_http_requests_total{{route=\"{}\",status=\"{}\"}} {}\n",
                       key.first, key.second, n);
  }
  append("# HELP warden_issuer_http_request_duration_seconds Time to serve a request.\n");
  append("# TYPE warden_issuer_http_request_duration_seconds histogram\n");
  for (const auto& [route, h] : latency_) {
    std::uint64_t cumulative = 0;
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      cumulative += h.counts[i];
      out += fmt::format(
          "warden_issuer_http_request_duration_seconds_bucket{{route=\"{}\",le=\"{}\"}} {}\n",
          route, kBuckets[i], cumulative);
    }
    out += fmt::format(
        "warden_issuer_http_request_duration_seconds_bucket{{route=\"{}\",le=\"+Inf\"}} {}\n",
        route, h.count);
    out += fmt::format("warden_issuer_http_request_duration_seconds_sum{{route=\"{}\"}} {}\n",
                       route, h.sum);
    out += fmt::format("warden_issuer_http_request_duration_seconds_count{{route=\"{}\"}} {}\n",
                       route, h.count);
  }
  append("# HELP warden_issuer_attestations_total Appraisals by verdict.\n");
  append("# TYPE warden_issuer_attestations_total counter\n");
  for (const char* verdict : {"pass", "fail"}) {
    const auto it = verdicts_.find(verdict);
    out += fmt::format("warden_issuer_attestations_total{{verdict=\"{}\"}} {}\n", verdict,
                       it == verdicts_.end() ? 0 : it->second);
  }
  append("# HELP warden_issuer_tokens_issued_total Workload tokens issued.\n");
  append("# TYPE warden_issuer_tokens_issued_total counter\n");
  out += fmt::format("warden_issuer_tokens_issued_total {}\n", tokens_);
  append("# HELP warden_issuer_open_connections Open client connections.\n");
  append("# TYPE warden_issuer_open_connections gauge\n");
  out += fmt::format("warden_issuer_open_connections {}\n", open_connections());
  append(
      "# HELP warden_issuer_refused_connections_total Connections refused at "
      "limits.max_connections or max_connections_per_address.\n");
  append("# TYPE warden_issuer_refused_connections_total counter\n");
  out += fmt::format("warden_issuer_refused_connections_total {}\n",
                     refused_connections_.load(std::memory_order_relaxed));
  return out;
}

}  // namespace warden::issuer::http
