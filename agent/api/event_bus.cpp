#include "agent/api/event_bus.h"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>

namespace warden::agent::api {

void EventBus::publish(std::string line) {
  boost::asio::post(ex_, [this, line = std::move(line)] { deliver(line); });
}

void EventBus::deliver(const std::string& line) {
  for (auto it = subscribers_.begin(); it != subscribers_.end();) {
    auto& s = **it;
    if (s.queue.size() >= queue_limit_) {
      s.overflowed_ = true;
      s.wake_.cancel();
      it = subscribers_.erase(it);
      continue;
    }
    s.queue.push_back(line);
    s.wake_.cancel();
    ++it;
  }
}

std::shared_ptr<Subscription> EventBus::subscribe() {
  auto s = std::make_shared<Subscription>(ex_);
  subscribers_.push_back(s);
  return s;
}

void EventBus::unsubscribe(const std::shared_ptr<Subscription>& s) { subscribers_.remove(s); }

void EventBus::close_all() {
  boost::asio::dispatch(ex_, [this] { close_all_here(); });
}

void EventBus::close_all_here() {
  for (auto& s : subscribers_) {
    s->closed_ = true;
    s->wake_.cancel();
  }
  subscribers_.clear();
}

}  // namespace warden::agent::api
