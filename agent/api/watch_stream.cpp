#include "agent/api/watch_stream.h"

#include <sys/socket.h>

#include <array>
#include <cerrno>
#include <string>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http.hpp>

#include "agent/api/local_connection.h"
#include "agent/token_cache.h"
#include "platform/os/unique_fd.h"

namespace warden::agent::api::detail {
namespace asio = boost::asio;
namespace http = boost::beast::http;
using UnixSocket = asio::local::stream_protocol::socket;
using Impl = LocalServer::Impl;
namespace {

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

/// A watcher sends nothing after its request, so its socket turning readable means the peer
/// closed (EOF or an error), or sent bytes it should not have, which are read and dropped.
bool watcher_still_there(UnixSocket& sock) {
  std::array<char, 4096> scratch{};
  for (int i = 0; i < 16; ++i) {
    const ssize_t n = ::recv(sock.native_handle(), scratch.data(), scratch.size(), MSG_DONTWAIT);
    if (n > 0) continue;
    if (n == 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
  }
  return true;
}

asio::awaitable<void> stream_watch(ConnectionSlot slot, UnixSocket sock, unsigned version,
                                   Watcher watcher) {
  using asio::experimental::awaitable_operators::operator||;
  Impl& self = slot.impl();
  const auto executor = co_await asio::this_coro::executor;
  std::shared_ptr<Subscription> sub;
  {
    std::lock_guard lock(self.bus_mu);
    if (self.server_gone) co_return;
    sub = self.bus.subscribe(executor, std::move(watcher));
  }
  struct Leave {
    Impl& self;
    std::shared_ptr<Subscription>& sub;
    Leave(Impl& i, std::shared_ptr<Subscription>& s) : self(i), sub(s) {}
    Leave(const Leave&) = delete;
    Leave& operator=(const Leave&) = delete;
    ~Leave() {
      std::lock_guard lock(self.bus_mu);
      if (!self.server_gone) self.bus.unsubscribe(sub);
    }
  } leave{self, sub};
  http::response<http::empty_body> res{http::status::ok, version};
  res.set(http::field::content_type, "application/x-ndjson");
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  auto [ec_header, n_header] = co_await http::async_write_header(sock, sr, kNoThrow);
  if (ec_header) co_return;
  sub->queue.emplace_front(R"({"type":"watching"})");
  for (;;) {
    while (!sub->queue.empty()) {
      std::string line = std::move(sub->queue.front());
      sub->queue.pop_front();
      line += '\n';
      auto [ec, n] =
          co_await asio::async_write(sock, http::make_chunk(asio::buffer(line)), kNoThrow);
      if (ec) co_return;
    }
    if (sub->overflowed() || sub->closed()) {
      if (sub->overflowed()) {
        const std::string line = R"({"type":"overflow"})"
                                 "\n";
        co_await asio::async_write(sock, http::make_chunk(asio::buffer(line)), kNoThrow);
      }
      co_await asio::async_write(sock, http::make_chunk_last(), kNoThrow);
      co_return;
    }
    // Waits for an event and, alongside, for the peer: a stream whose watcher went away ends
    // (and gives back its slot) now, not at the next event, which may be hours away.
    sub->wake().expires_at(asio::steady_timer::time_point::max());
    const auto woke = co_await (sub->wake().async_wait(kNoThrow) ||
                                sock.async_wait(UnixSocket::wait_read, kNoThrow));
    if (woke.index() == 1 && !watcher_still_there(sock)) co_return;
  }
}

}  // namespace

Watcher watcher_of(Socket kind, const os::Selectors& s) {
  Watcher w;
  w.admin = kind == Socket::kAdmin;
  w.uid = s.uid;
  w.container_id = s.container_id;
  w.workload = workload_identity(s);
  return w;
}

void refuse_watch(int fd, unsigned version, std::size_t limit) {
  Connection conn(fd, 0);  // only written to
  std::string out;
  auto reply = error_reply(429, "limit_exceeded",
                           "watch: this uid already has " + std::to_string(limit) +
                               " watch streams open (api.max_watch_per_uid)");
  (void)write_reply(conn, out, reply, version, false);
}

void hand_to_watch(ConnectionSlot slot, int fd, unsigned version, Watcher watcher) {
  Impl& self = slot.impl();
  os::UniqueFd owned(fd);
  UnixSocket sock(self.io);
  boost::system::error_code ec;
  sock.assign(asio::local::stream_protocol(), owned.get(), ec);
  if (ec) return;
  (void)owned.release();  // the socket closes it
  // co_spawn starts the stream on the io_context's thread; if that never runs again, destroying
  // the io_context destroys the stream and closes its socket.
  asio::co_spawn(self.io,
                 stream_watch(std::move(slot), std::move(sock), version, std::move(watcher)),
                 asio::detached);
}

}  // namespace warden::agent::api::detail
