#include "agent/posture/own_writes.h"

namespace warden::agent::posture {

void OwnWrites::expect(const std::filesystem::path& path) {
  const auto deadline = now_() + kLifetime;
  std::lock_guard lock(mutex_);
  expected_[path.lexically_normal()].push_back(deadline);
}

bool OwnWrites::consume(const std::filesystem::path& path) {
  const auto now = now_();
  std::lock_guard lock(mutex_);
  auto it = expected_.find(path);
  if (it == expected_.end()) return false;
  auto& deadlines = it->second;
  while (!deadlines.empty() && deadlines.front() < now) deadlines.pop_front();
  const bool found = !deadlines.empty();
  if (found) deadlines.pop_front();
  if (deadlines.empty()) expected_.erase(it);
  return found;
}

}  // namespace warden::agent::posture
