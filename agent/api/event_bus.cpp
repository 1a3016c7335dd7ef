#include "agent/api/event_bus.h"

#include <boost/asio/post.hpp>

namespace warden::agent::api {

void Subscription::push(const std::string& line, std::size_t limit) {
  if (closed_ || overflowed_) return;
  if (queue.size() >= limit) {
    overflowed_ = true;
  } else {
    queue.push_back(line);
  }
  wake_.cancel();
}

void Subscription::close() {
  closed_ = true;
  wake_.cancel();
}

void EventBus::publish(std::string line) {
  auto shared = std::make_shared<const std::string>(std::move(line));
  std::lock_guard lock(mu_);
  for (const auto& s : subscribers_) {
    boost::asio::post(s->wake_.get_executor(),
                      [s, shared, limit = queue_limit_] { s->push(*shared, limit); });
  }
}

std::shared_ptr<Subscription> EventBus::subscribe(const boost::asio::any_io_executor& ex) {
  auto s = std::make_shared<Subscription>(ex);
  std::lock_guard lock(mu_);
  subscribers_.push_back(s);
  return s;
}

void EventBus::unsubscribe(const std::shared_ptr<Subscription>& s) {
  std::lock_guard lock(mu_);
  subscribers_.remove(s);
}

void EventBus::close_all() {
  std::lock_guard lock(mu_);
  for (const auto& s : subscribers_) {
    boost::asio::post(s->wake_.get_executor(), [s] { s->close(); });
  }
  subscribers_.clear();
}

}  // namespace warden::agent::api
