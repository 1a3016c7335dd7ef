#pragma once
// An in-process broadcaster of JSON lines for GET /v1/watch. publish(), subscribe(),
// unsubscribe() and close_all() may be called from any thread. Each subscription lives on the
// executor it was made with (the watching connection's, run by one thread): the bus posts lines
// and the close to it there, so a subscription's queue needs no lock. Each queue is bounded: a
// subscriber that falls behind by more than the limit is cut off (its stream ends; the client
// reconnects) rather than letting memory grow.

#include <cstddef>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>

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
  void push(const std::string& line, std::size_t limit);
  void close();

  boost::asio::steady_timer wake_;
  bool overflowed_ = false;
  bool closed_ = false;
};

class EventBus {
 public:
  explicit EventBus(std::size_t queue_limit = 256) : queue_limit_(queue_limit) {}

  /// `line` is one JSON object, without the trailing newline.
  void publish(std::string line);
  /// A subscription whose queue is filled on `ex`, which must run on one thread.
  std::shared_ptr<Subscription> subscribe(const boost::asio::any_io_executor& ex);
  void unsubscribe(const std::shared_ptr<Subscription>& s);
  /// Ends every current stream (shutdown).
  void close_all();

 private:
  std::mutex mu_;
  std::size_t queue_limit_;
  std::list<std::shared_ptr<Subscription>> subscribers_;
};

}  // namespace warden::agent::api
