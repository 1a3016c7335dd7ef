#pragma once
// A push receiver for tests: an HTTP or HTTPS server on loopback (one Asio thread, any number
// of concurrent connections) that records each request and answers as the test says.

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

namespace warden::test {

struct ReceivedPost {
  std::string target;
  std::string content_type;
  std::string accept;
  std::string authorization;
  std::string body;
};

struct ReceiverReply {
  enum class Mode {
    kRespond,     ///< status, content_type, body
    kHang,        ///< reads the request, never answers (until the receiver is destroyed)
    kCloseEarly,  ///< reads the request, closes the connection
    kGarbage,     ///< answers bytes that are not HTTP
  } mode = Mode::kRespond;
  unsigned status = 202;
  std::string content_type;
  std::string body;
};

class Receiver {
 public:
  using Behaviour = std::function<ReceiverReply(const ReceivedPost&)>;
  /// Listens on `address` (port 0); with `pki`, TLS with pki/server.{crt,key}.
  explicit Receiver(Behaviour behaviour, std::optional<std::filesystem::path> pki = std::nullopt,
                    const std::string& address = "127.0.0.1");
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// scheme://host:port/path for host (default: the listening address).
  [[nodiscard]] std::string url(const std::string& path = "/events",
                                const std::string& host = "") const;
  [[nodiscard]] std::vector<ReceivedPost> received() const;
  /// Waits until at least n requests have been read (not a timing assertion: a bound on a hang).
  bool wait_for(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

  void set_behaviour(Behaviour behaviour);

 private:
  void accept_loop();
  ReceiverReply on_request(ReceivedPost post);

  boost::asio::io_context io_{1};
  std::optional<boost::asio::ssl::context> tls_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  std::string address_;
  std::uint16_t port_ = 0;
  mutable std::mutex mutex_;  // guards received_ and behaviour_
  mutable std::condition_variable cv_;
  std::vector<ReceivedPost> received_;
  Behaviour behaviour_;
  std::thread thread_;
};

/// A throwaway PKI from scripts/make-test-pki in dir (ca.crt, server.crt/key for `names`).
void make_pki(const std::filesystem::path& dir, const std::vector<std::string>& names = {});

}  // namespace warden::test
