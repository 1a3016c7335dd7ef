#pragma once
// The admin API on a Unix socket: plain HTTP/1.1 + JSON through the same Router as HTTPS, for
// callers the socket file's permissions admit (mode 0660, owner the issuer, group
// admin.socket_group). The kernel names the caller (SO_PEERCRED): "uid N" is the actor of its
// audit records. Serves /admin/v1/* and /healthz only; admin traffic is light, so there is one
// coroutine per connection on the server's io_context and no connection cap beyond the listen
// backlog.

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/basic_stream.hpp>

#include "issuer/config.h"
#include "issuer/http/metrics.h"
#include "issuer/http/router.h"
#include "platform/base/error.h"

namespace warden::issuer::http {

class AdminSocket {
 public:
  /// Creates the socket at `path` with its final owner, group and mode before listen(), so that
  /// no one else can connect in between. A stale socket file is replaced; a socket another
  /// process still serves, or a file that is not a socket, is an error. kNotFound when the
  /// directory of `path` does not exist.
  static Result<std::unique_ptr<AdminSocket>> create(boost::asio::io_context& io,
                                                     const std::string& path,
                                                     const std::string& group,
                                                     const IssuerConfig::Limits& limits,
                                                     Router& router, Metrics& metrics);
  ~AdminSocket();
  AdminSocket(const AdminSocket&) = delete;
  AdminSocket& operator=(const AdminSocket&) = delete;

  void start();
  /// Stops accepting, closes every connection (waiting up to `grace` for them to end) and
  /// removes the socket file. Not from a thread of the io_context.
  void stop(std::chrono::milliseconds grace);

 private:
  using Socket = boost::beast::basic_stream<boost::asio::local::stream_protocol>;
  AdminSocket(boost::asio::io_context& io, std::string path, const IssuerConfig::Limits& limits,
              Router& router, Metrics& metrics);
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(std::shared_ptr<Socket> socket);

  boost::asio::io_context& io_;
  std::string path_;
  IssuerConfig::Limits limits_;
  Router& router_;
  Metrics& metrics_;
  boost::asio::local::stream_protocol::acceptor acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> live_{0};
  std::mutex mu_;  // guards sockets_
  std::unordered_map<Socket*, std::weak_ptr<Socket>> sockets_;
};

}  // namespace warden::issuer::http
