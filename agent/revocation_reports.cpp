#include "agent/revocation_reports.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include <spdlog/spdlog.h>

namespace warden::agent {
namespace {

constexpr std::size_t kMaxReason = 1024;  // as the issuer's revoke request takes it

bool same_signer(const RevocationReport& a, const RevocationReport& b) {
  return a.request.device_id == b.request.device_id && a.key.public_area == b.key.public_area;
}

}  // namespace

ReportOutcome classify_report_error(const Error& error) {
  switch (error.code) {
    case ErrorCode::kReplay:
      return ReportOutcome::kDelivered;
    case ErrorCode::kUnavailable:
    case ErrorCode::kTimeout:
    case ErrorCode::kIo:
    case ErrorCode::kInternal:  // the issuer's 500 (its store failing), or a proxy's
    case ErrorCode::kConflict:
    // Clock skew beyond the issuer's window: each attempt is stamped again, and the clocks may
    // be put right.
    case ErrorCode::kExpired:
    case ErrorCode::kNotYetValid:
      return ReportOutcome::kRetry;
    default:
      return ReportOutcome::kDrop;
  }
}

ReportOutcome classify_signing_error(const Error& error) {
  if (error.code == ErrorCode::kUnavailable || error.code == ErrorCode::kTimeout ||
      error.code == ErrorCode::kIo)
    return ReportOutcome::kRetry;
  // TSS2_RC_LAYER_MASK: layer 0 is the TPM's own response code; the others (TCTI, SYS, ESAPI,
  // a resource manager) say it was not reached or the connection broke.
  constexpr std::uint32_t kLayerMask = 0xFFU << 16;
  const bool not_reached = (error.tss_rc & kLayerMask) != 0;
  return error.code == ErrorCode::kTpm && not_reached ? ReportOutcome::kRetry
                                                      : ReportOutcome::kDrop;
}

ReportQueue::ReportQueue(const Clock& clock, Random& random, Options options)
    : clock_(clock), random_(random), options_(options) {}

void ReportQueue::push(RevocationReport report) {
  if (queued_.size() >= std::max<std::size_t>(options_.capacity, 1)) {
    std::size_t merged = 0;
    for (auto it = queued_.begin(); it != queued_.end();) {
      if (same_signer(it->report, report)) {
        it = queued_.erase(it);
        ++merged;
      } else {
        ++it;
      }
    }
    if (merged == 0) {
      spdlog::warn(
          "agent: revocation report of device {} dropped ({} reports queued, the most allowed, "
          "none of them signed by the same key): {}",
          queued_.front().report.request.device_id, queued_.size(),
          queued_.front().report.request.reason);
      queued_.pop_front();
    } else {
      spdlog::warn(
          "agent: {} queued revocation reports merged into one revoking all tokens of device {} "
          "(the queue holds at most {})",
          merged + 1, report.request.device_id, options_.capacity);
      report.request.jtis.clear();
      report.request.reason =
          ("merged " + std::to_string(merged + 1) + " reports; latest: " + report.request.reason)
              .substr(0, kMaxReason);
    }
  }
  queued_.push_back(Attempt{std::move(report), 0,
                            Backoff(options_.retry_base, options_.retry_max, random_),
                            clock_.now()});
}

std::vector<ReportQueue::Attempt> ReportQueue::take(bool all) {
  std::vector<Attempt> out;
  const auto now = clock_.now();
  for (auto it = queued_.begin(); it != queued_.end();) {
    // A wall clock set back must not hold a report longer than the longest backoff.
    const bool due = all || it->due <= now || it->due - now > options_.retry_max;
    if (due) {
      out.push_back(std::move(*it));
      it = queued_.erase(it);
    } else {
      ++it;
    }
  }
  out_ += out.size();
  return out;
}

std::chrono::milliseconds ReportQueue::retry(Attempt attempt) {
  finish();
  ++attempt.failures;
  const auto delay = attempt.backoff.next();
  attempt.due = clock_.now() + delay;
  queued_.push_back(std::move(attempt));
  return delay;
}

void ReportQueue::resubmit(Attempt attempt) {
  finish();
  attempt.due = clock_.now();
  queued_.push_back(std::move(attempt));
}

void ReportQueue::finish() {
  if (out_ > 0) --out_;
}

std::optional<std::chrono::milliseconds> ReportQueue::next_due() const {
  if (queued_.empty()) return std::nullopt;
  const auto now = clock_.now();
  auto earliest = queued_.front().due;
  for (const auto& a : queued_) earliest = std::min(earliest, a.due);
  if (earliest <= now) return std::chrono::milliseconds(0);
  return std::min(std::chrono::ceil<std::chrono::milliseconds>(earliest - now), options_.retry_max);
}

void ReportQueue::clear() {
  queued_.clear();
  out_ = 0;
}

}  // namespace warden::agent
