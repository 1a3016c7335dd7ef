#pragma once
// An in-process broadcaster of JSON lines for GET /v1/watch. publish(), subscribe(),
// unsubscribe() and close_all() may be called from any thread. Each subscription lives on the
// executor it was made with (the watching connection's, run by one thread): the bus posts lines
// and the close to it there, so a subscription's queue needs no lock. Each queue is bounded: a
// subscriber that falls behind by more than the limit is cut off (its stream ends; the client
// reconnects) rather than letting memory grow.
//
// Every workload may watch, so an event is shown to a subscriber according to who it is: an
// admin-socket subscriber sees every event in full; a workload sees in full only the events about
// itself (its uid, container, tokens), and of the rest only their public form (device-wide state
// without the admin's or the posture monitor's reasons), or nothing.

#include <sys/types.h>

#include <cstddef>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

namespace warden::agent::api {

class EventBus;

/// Who a subscriber is: from its connection's resolved selectors (never from what it sent).
struct Watcher {
  bool admin = false;  ///< subscribed on the admin socket: every event in full
  uid_t uid = 0;
  std::string container_id;  ///< empty: not in a container
  std::string workload;      ///< the agent's stable workload identity of its selectors
};

/// One event, in the forms its subscribers may see.
struct Event {
  std::string line;  ///< one JSON object (no newline): for admins and the event's owners
  /// For every other subscriber; empty: they do not see the event at all.
  std::string public_line;
  /// The owners: subscribers that match every field present. None present: only admins (and
  /// everyone else through public_line).
  std::optional<uid_t> uid;
  std::optional<std::string> container_id;
  std::optional<std::string> workload;

  /// The form `w` may see, or nullptr.
  [[nodiscard]] const std::string* visible_to(const Watcher& w) const;
};

class Subscription {
 public:
  Subscription(const boost::asio::any_io_executor& ex, Watcher watcher)
      : watcher_(std::move(watcher)), wake_(ex) {}
  /// Lines waiting to be written; the stream ends when overflowed() or closed().
  std::deque<std::string> queue;
  [[nodiscard]] bool overflowed() const { return overflowed_; }
  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] const Watcher& watcher() const { return watcher_; }
  /// Waited on by the streaming session; cancelled when a line arrives or on close.
  boost::asio::steady_timer& wake() { return wake_; }

 private:
  friend class EventBus;
  void push(const std::string& line, std::size_t limit);
  void close();

  const Watcher watcher_;
  boost::asio::steady_timer wake_;
  bool overflowed_ = false;
  bool closed_ = false;
};

class EventBus {
 public:
  explicit EventBus(std::size_t queue_limit = 256) : queue_limit_(queue_limit) {}

  /// Each subscriber gets the form of `event` it may see (Event::visible_to), if any.
  void publish(Event event);
  /// An event with nothing private in it: every subscriber sees `line` (one JSON object, without
  /// the trailing newline).
  void publish(std::string line);
  /// A subscription whose queue is filled on `ex`, which must run on one thread.
  std::shared_ptr<Subscription> subscribe(const boost::asio::any_io_executor& ex, Watcher watcher);
  void unsubscribe(const std::shared_ptr<Subscription>& s);
  /// Ends every current stream (shutdown).
  void close_all();

 private:
  std::mutex mu_;
  std::size_t queue_limit_;
  std::list<std::shared_ptr<Subscription>> subscribers_;
};

}  // namespace warden::agent::api
