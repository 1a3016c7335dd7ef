#pragma once
// An in-process broadcaster of JSON lines for GET /v1/watch. Its state lives on a strand of the
// io_context it is given (wardend runs that io_context on two threads): publish() and close_all()
// may be called from any thread; subscribers run on executor(). Each subscriber has a bounded
// queue: a subscriber that falls behind by more than the limit is cut off (its stream ends; the
// client reconnects) rather than letting memory grow.

#include <cstddef>
#include <deque>
#include <list>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

namespace warden::agent::api {

class EventBus;

class Subscription {
 public:
  explicit Subscription(const boost::asio::any_io_executor& ex) : wake_(ex) {}
  /// Lines waiting to be written; the stream ends when overflowed() or closed().
  std::deque<std::string> queue;
  [[nodiscard]] bool overflowed() const { return overflowed_; }
  [[nodiscard]] bool closed() const { return closed_; }
  /// Waited on by the streaming session; cancelled when a line arrives or on close.
  boost::asio::steady_timer& wake() { return wake_; }

 private:
  friend class EventBus;
  boost::asio::steady_timer wake_;
  bool overflowed_ = false;
  bool closed_ = false;
};

class EventBus {
 public:
  explicit EventBus(const boost::asio::any_io_executor& ex, std::size_t queue_limit = 256)
      : ex_(boost::asio::make_strand(ex)), queue_limit_(queue_limit) {}

  /// The strand every subscriber's stream runs on.
  [[nodiscard]] const boost::asio::any_io_executor& executor() const { return ex_; }
  /// Thread-safe. `line` is one JSON object, without the trailing newline.
  void publish(std::string line);
  /// On executor() only.
  std::shared_ptr<Subscription> subscribe();
  void unsubscribe(const std::shared_ptr<Subscription>& s);
  /// Thread-safe. Ends every stream (shutdown, revocation of the watch API).
  void close_all();

 private:
  void deliver(const std::string& line);
  void close_all_here();

  boost::asio::any_io_executor ex_;
  std::size_t queue_limit_;
  std::list<std::shared_ptr<Subscription>> subscribers_;
};

}  // namespace warden::agent::api
