#pragma once
// Source::kIma: the IMA measurement count grew.

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

#include "agent/posture/source.h"

namespace warden::agent::posture {

/// Reads the kernel's IMA measurement count (securityfs in the daemon; a fake in unit tests).
class ImaCounter {
 public:
  virtual ~ImaCounter() = default;
  virtual Result<std::uint64_t> read() = 0;
};

/// os::read_ima_count under `securityfs_root`.
class SecurityfsImaCounter final : public ImaCounter {
 public:
  explicit SecurityfsImaCounter(std::filesystem::path securityfs_root)
      : root_(std::move(securityfs_root)) {}
  Result<std::uint64_t> read() override;

 private:
  std::filesystem::path root_;
};

/// Reports kImaCountGrew once per new count above (or below) the reference.
class ImaSource {
 public:
  ImaSource(ImaCounter& counter, Observer& observer, Counters& counters, NowFn now)
      : counter_(counter), observer_(observer), counters_(counters), now_(std::move(now)) {}
  /// Takes the first reference. Errors: the count is unreadable.
  Status start();
  /// Reads the count; an unreadable count is logged at debug and skipped.
  void poll();
  /// The current count becomes the reference (kept when unreadable).
  void rebaseline();

 private:
  ImaCounter& counter_;
  Observer& observer_;
  Counters& counters_;
  NowFn now_;
  std::uint64_t reference_ = 0;
  std::map<std::string, std::string> reported_;
};

}  // namespace warden::agent::posture
