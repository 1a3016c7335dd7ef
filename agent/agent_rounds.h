#pragma once
// Attestation rounds one at a time, shared by the callers that arrive while one runs.

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>

#include "platform/base/error.h"

namespace warden::agent {

/// Every member is guarded by the caller's mutex (the agent's mu_), which `lock` holds when
/// join() is entered and left.
class SharedRounds {
 public:
  /// Returns the result of a round that starts after this call: runs `round` now when none is
  /// running, else waits (releasing `lock`) and shares the next one with every caller that
  /// arrived during the current one. A round that started earlier may have read the TPM before
  /// what prompted this call, so its result is never taken. `round` may release `lock` while it
  /// runs and must hold it again when it returns.
  Status join(std::unique_lock<std::mutex>& lock, const std::function<Status()>& round);

  /// Callers waiting in join() for a round to start or end.
  [[nodiscard]] std::size_t waiting() const { return waiting_; }

 private:
  std::condition_variable cv_;
  bool running_ = false;
  std::uint64_t started_ = 0;
  std::uint64_t done_ = 0;
  std::size_t waiting_ = 0;
  Status last_;
};

}  // namespace warden::agent
