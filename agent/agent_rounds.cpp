#include "agent/agent_rounds.h"

namespace warden::agent {

Status SharedRounds::join(std::unique_lock<std::mutex>& lock,
                          const std::function<Status()>& round) {
  const std::uint64_t target = started_ + 1;
  while (done_ < target) {
    if (!running_) {
      running_ = true;
      const std::uint64_t number = ++started_;
      Status result = round();
      running_ = false;
      done_ = number;
      last_ = result;
      cv_.notify_all();
      return result;
    }
    ++waiting_;
    cv_.wait(lock);
    --waiting_;
  }
  return last_;
}

}  // namespace warden::agent
