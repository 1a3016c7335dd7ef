// A thread-safe memo of immutable values by a byte-string key, for things that are costly to
// build and repeat (parsed public keys). Only successfully built values are kept; at `capacity`
// the memo is emptied rather than tracking use: values are cheap to rebuild next to what a full
// memo would save, and the working set is normally far smaller.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "platform/base/error.h"

namespace warden {

template <class V>
class BoundedMemo {
 public:
  explicit BoundedMemo(std::size_t capacity) : capacity_(capacity) {}
  BoundedMemo(const BoundedMemo&) = delete;
  BoundedMemo& operator=(const BoundedMemo&) = delete;

  /// The value kept for `id`, or `make()` (returning Result<V>), kept when it succeeds. `make`
  /// runs without the lock: two threads may build the same value once each.
  template <class Make>
  Result<V> get(std::string id, Make&& make) {
    {
      std::lock_guard lock(mutex_);
      if (auto it = values_.find(id); it != values_.end()) return it->second;
    }
    Result<V> made = std::forward<Make>(make)();
    if (!made) return made;
    std::lock_guard lock(mutex_);
    if (values_.size() >= capacity_) values_.clear();
    values_.try_emplace(std::move(id), *made);
    return made;
  }

 private:
  const std::size_t capacity_;
  std::mutex mutex_;
  std::unordered_map<std::string, V> values_;
};

}  // namespace warden
