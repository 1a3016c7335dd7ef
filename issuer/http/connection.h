#pragma once
// Internal to issuer/http/server.cpp: the request body type and the per-connection state of the
// HTTPS server.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/buffers_range.hpp>
#include <boost/beast/http.hpp>

#include "platform/base/bytes.h"

namespace warden::issuer::http::detail {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using Stream = asio::ssl::stream<tcp::socket>;

// Beast's vector_body, except that a received chunk is appended instead of resized into (which
// zero-filled every byte before copying it: ~2% of the CPU of a 150 KB attest upload).
struct ByteBody {
  using value_type = Bytes;

  class reader {
   public:
    template <bool isRequest, class Fields>
    explicit reader(bhttp::header<isRequest, Fields>& /*header*/, value_type& body) : body_(body) {}

    void init(const boost::optional<std::uint64_t>& length, error_code& ec) {
      if (length) {
        if (*length > body_.max_size()) {
          ec = bhttp::error::buffer_overflow;
          return;
        }
        body_.reserve(static_cast<std::size_t>(*length));  // <= max_size()
      }
      ec = {};
    }

    template <class ConstBufferSequence>
    std::size_t put(const ConstBufferSequence& buffers, error_code& ec) {
      const std::size_t n = beast::buffer_bytes(buffers);
      if (n > body_.max_size() - body_.size()) {
        ec = bhttp::error::buffer_overflow;
        return 0;
      }
      for (const auto b : beast::buffers_range_ref(buffers)) {
        const auto* p = static_cast<const std::uint8_t*>(b.data());
        body_.insert(body_.end(), p, p + b.size());
      }
      ec = {};
      return n;
    }

    void finish(error_code& ec) { ec = {}; }

   private:
    value_type& body_;
  };
};

// One connection. Every member is used only from the connection's strand.
struct Connection : std::enable_shared_from_this<Connection> {
  Connection(tcp::socket socket, asio::ssl::context& ssl)
      : raw(std::move(socket)), ssl_context(ssl), timer(raw.get_executor()) {}
  // The TLS stream (an SSL object and Asio's two 17 KB record buffers) is built only once the
  // client has sent its first byte: an idle TCP connection costs a socket and this struct.
  tcp::socket raw;
  asio::ssl::context& ssl_context;
  std::optional<Stream> tls;
  asio::steady_timer timer;
  tcp::socket& socket() { return tls ? tls->next_layer() : raw; }
  void start_tls() { tls.emplace(std::move(raw), ssl_context); }
  std::chrono::steady_clock::time_point deadline =
      std::chrono::steady_clock::time_point::max();  ///< max: disarmed
  std::uint64_t timer_generation = 0;
  bool timer_waiting = false;
  bool timed_out = false;
  bool idle = false;  ///< waiting for the first byte of a request

  // Cancels the socket's operations when `after` passes, leaving the socket open so that a 408
  // can still be written. Arming and disarming only move the deadline: the timer stays waiting
  // and, when it fires early, waits again for the current deadline. Re-arming the timer itself
  // twice per request (read, write) cost a cancelled wait and its handler each time.
  void arm(std::chrono::milliseconds after) {
    timed_out = false;
    deadline = std::chrono::steady_clock::now() + after;
    if (!timer_waiting || deadline < timer.expiry()) wait();
  }
  void disarm() { deadline = std::chrono::steady_clock::time_point::max(); }
  void wait() {
    timer_waiting = true;
    const auto generation = ++timer_generation;
    timer.expires_at(deadline);
    // weak: a wait that already fired may run after the connection ended.
    timer.async_wait([self = weak_from_this(), generation](error_code ec) {
      auto c = self.lock();
      if (!c || generation != c->timer_generation) return;  // a later wait replaced this one
      c->timer_waiting = false;
      if (ec || c->deadline == std::chrono::steady_clock::time_point::max()) return;
      if (std::chrono::steady_clock::now() < c->deadline) return c->wait();
      c->timed_out = true;
      error_code ignored;
      c->socket().cancel(ignored);
    });
  }
};

}  // namespace warden::issuer::http::detail
