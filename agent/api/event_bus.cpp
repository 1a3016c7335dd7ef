#include "agent/api/event_bus.h"

#include <boost/asio/post.hpp>

namespace warden::agent::api {

const std::string* Event::visible_to(const Watcher& w) const {
  if (w.admin) return &line;
  const bool owned = (uid || container_id || workload) && (!uid || *uid == w.uid) &&
                     (!container_id || *container_id == w.container_id) &&
                     (!workload || *workload == w.workload);
  if (owned) return &line;
  return public_line.empty() ? nullptr : &public_line;
}

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

void EventBus::publish(Event event) {
  // Shared by every subscriber's posted handler; the event outlives this call in them.
  auto shared = std::make_shared<const Event>(std::move(event));
  std::lock_guard lock(mu_);
  for (const auto& s : subscribers_) {
    const std::string* form = shared->visible_to(s->watcher_);
    if (form == nullptr) continue;
    boost::asio::post(s->wake_.get_executor(),
                      [s, shared, form, limit = queue_limit_] { s->push(*form, limit); });
  }
}

void EventBus::publish(std::string line) {
  Event event;
  event.public_line = line;
  event.line = std::move(line);
  publish(std::move(event));
}

std::shared_ptr<Subscription> EventBus::subscribe(const boost::asio::any_io_executor& ex,
                                                  Watcher watcher) {
  auto s = std::make_shared<Subscription>(ex, std::move(watcher));
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
