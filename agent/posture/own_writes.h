#pragma once
// The agent's own writes in the state dir, announced before they happen, so that the change
// they cause is taken as the new reference instead of tampering.

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>

#include "agent/posture/source.h"

namespace warden::agent::posture {

/// Thread-safe (`mutex_`): expect() from any thread, consume() from the monitor thread.
class OwnWrites {
 public:
  static constexpr std::chrono::seconds kLifetime{30};
  explicit OwnWrites(NowFn now) : now_(std::move(now)) {}
  /// One write of `path` is coming; the expectation lapses after kLifetime.
  void expect(const std::filesystem::path& path);
  /// True (and one expectation used up) when a write of `path` was announced and has not lapsed.
  bool consume(const std::filesystem::path& path);

 private:
  NowFn now_;
  std::mutex mutex_;  ///< guards expected_
  std::map<std::filesystem::path, std::deque<SteadyTime>> expected_;
};

}  // namespace warden::agent::posture
