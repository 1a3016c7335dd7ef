#include "agent/api/local_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <fcntl.h>
#include <memory_resource>
#include <mutex>
#include <pthread.h>
#include <span>
#include <string>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/crypto.h>
#include <spdlog/spdlog.h>

#include "agent/api/handlers.h"
#include "agent/token_cache.h"

namespace warden::agent::api {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using UnixSocket = asio::local::stream_protocol::socket;
using Acceptor = asio::local::stream_protocol::acceptor;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view kSpiffeHeader = "workload.spiffe.io";
using ArenaAlloc = std::pmr::polymorphic_allocator<char>;
using RequestParser =
    http::request_parser<http::basic_string_body<char, std::char_traits<char>, ArenaAlloc>,
                         ArenaAlloc>;

struct LocalServer::Impl {
  Impl(asio::io_context& io_, LocalServerOptions options_, WorkloadService& service_,
       os::WorkloadIdentityResolver& resolver_, EventBus& bus_)
      : io(io_), options(std::move(options_)), service(service_), resolver(resolver_), bus(bus_) {}

  asio::io_context& io;
  LocalServerOptions options;
  WorkloadService& service;
  os::WorkloadIdentityResolver& resolver;
  EventBus& bus;
  std::optional<Acceptor> workload;
  std::optional<Acceptor> admin;
  /// Guards `open`, `pools`, `watching`, `watching_per_uid` and the refusal log's counters.
  mutable std::mutex mu;
  /// Connections being served by their threads (not watch streams); notified as one ends.
  std::unordered_set<int> open;
  std::condition_variable idle;
  /// One socket's connections (on threads and watch streams), in all and per peer uid.
  struct Pool {
    std::size_t open = 0;
    std::unordered_map<uid_t, std::size_t> per_uid;
  };
  std::array<Pool, 2> pools;  ///< [Socket::kWorkload], [Socket::kAdmin]
  std::size_t watching = 0;   ///< watch streams on `io`
  std::unordered_map<uid_t, std::size_t> watching_per_uid;
  /// Connections closed at accept since the last log line: one line per interval, not per
  /// connection, whatever a flood of connects does.
  std::size_t refused = 0;
  std::chrono::steady_clock::time_point refused_logged{};
  /// Set (under bus_mu) by the server's destructor: the bus may be gone. Watch streams outlive
  /// the server on `io`, and touch the bus only under bus_mu while this is false.
  bool server_gone = false;
  std::mutex bus_mu;
  std::atomic<bool> stopped = false;
};

namespace {

using Impl = LocalServer::Impl;

Result<Acceptor> bind_socket(asio::io_context& io, const std::filesystem::path& path, mode_t mode,
                             uid_t owner, std::optional<gid_t> gid) {
  std::error_code fs_ec;
  const auto st = std::filesystem::symlink_status(path, fs_ec);
  if (!fs_ec && std::filesystem::exists(st)) {
    if (st.type() != std::filesystem::file_type::socket) {
      return fail(ErrorCode::kAlreadyExists,
                  "local api: " + path.string() + " exists and is not a socket");
    }
    std::filesystem::remove(path, fs_ec);
  }
  Acceptor acceptor(io);
  boost::system::error_code ec;
  const asio::local::stream_protocol::endpoint endpoint(path.string());
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (ec) return fail(ErrorCode::kIo, "local api: bind " + path.string() + ": " + ec.message());
  // Every chunk a client writes then names its writer: Connection::read_some refuses bytes from
  // a process other than the one identified (a socket shared after fork).
  WARDEN_TRY_STATUS(os::enable_sender_credentials(acceptor.native_handle()));
  // Ownership and mode before listen(): nobody can connect before the permissions are final.
  // Owned by the uid the agent runs as, so that it can use its own sockets after dropping root.
  if (::chown(path.c_str(), owner, gid ? *gid : static_cast<gid_t>(-1)) != 0) {
    return fail(ErrorCode::kPermissionDenied,
                "local api: chown " + path.string() + " to uid " + std::to_string(owner) +
                    (gid ? " gid " + std::to_string(*gid) : std::string()) + ": " +
                    std::strerror(errno));
  }
  if (::chmod(path.c_str(), mode) != 0) {
    return fail(ErrorCode::kIo, "local api: chmod " + path.string() + ": " + std::strerror(errno));
  }
  acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return fail(ErrorCode::kIo, "local api: listen " + path.string() + ": " + ec.message());
  return acceptor;
}

bool admin_allowed(const Impl& self, const os::Selectors& s) {
  // The agent's uid is the one it runs as after a privilege drop, not root's at bind.
  if (s.uid == 0 || s.uid == self.options.agent_uid.value_or(::geteuid())) return true;
  if (!self.options.admin_gid) return false;
  const gid_t g = *self.options.admin_gid;
  return s.gid == g || std::find(s.groups.begin(), s.groups.end(), g) != s.groups.end();
}

/// Writes status line, headers and body into `out` (reused per connection): one buffer, one
/// write, and no header container to allocate per response. A secret body stays in its locked
/// buffer: `out` then gets the head only.
void serialize_reply(std::string& out, const HttpReply& reply, unsigned version, bool keep_alive) {
  const bool secret = !reply.secret_body.empty();
  out.clear();
  out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
  std::array<char, 24> num{};
  auto r = std::to_chars(num.data(), num.data() + num.size(), reply.status);
  out.append(num.data(), r.ptr);
  out += ' ';
  const auto reason = http::obsolete_reason(static_cast<http::status>(reply.status));
  out.append(reason.data(), reason.size());
  out += "\r\nContent-Type: application/json\r\nContent-Length: ";
  r = std::to_chars(num.data(), num.data() + num.size(),
                    secret ? reply.secret_body.size() : reply.body.size());
  out.append(num.data(), r.ptr);
  if (version == 10 && keep_alive) out += "\r\nConnection: keep-alive";
  if (version != 10 && !keep_alive) out += "\r\nConnection: close";
  out += "\r\n\r\n";
  if (!secret) out += reply.body;
}

/// A connected socket read and written with blocking calls by its connection's thread. Receives
/// time out (SO_RCVTIMEO) so an idle connection ends; `read_some` is Beast's SyncReadStream.
/// Every chunk read carries its writer's pid (SO_PASSCRED on the listener): a chunk written by
/// any process but `peer` (the one identified at connect, 0 when none was) marks the connection
/// foreign, and no request on it is answered.
class Connection {
 public:
  Connection(int fd, pid_t peer) : fd_(fd), peer_(peer) {}
  [[nodiscard]] int fd() const { return fd_; }
  /// True once any byte came from a process other than the identified peer.
  [[nodiscard]] bool foreign() const { return foreign_; }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    asio::mutable_buffer into;
    for (auto it = asio::buffer_sequence_begin(buffers); it != asio::buffer_sequence_end(buffers);
         ++it) {
      into = *it;
      if (into.size() != 0) break;
    }
    for (;;) {
      const auto chunk = os::receive_with_sender(fd_, into.data(), into.size());
      const ssize_t n = chunk.size;
      if (n > 0) {
        if (chunk.sender != peer_ || peer_ == 0) foreign_ = true;
        ec = {};
        return static_cast<std::size_t>(n);
      }
      if (n == 0) {
        ec = asio::error::eof;
        return 0;
      }
      if (errno == EINTR) continue;
      ec = errno == EAGAIN || errno == EWOULDBLOCK
               ? boost::system::error_code(asio::error::timed_out)
               : boost::system::error_code(errno, boost::system::system_category());
      return 0;
    }
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  /// Writes every byte of `parts` (or fails: peer gone, or the send timeout passed).
  bool write_all(std::span<iovec> parts) {
    while (!parts.empty()) {
      msghdr msg{};
      msg.msg_iov = parts.data();
      msg.msg_iovlen = parts.size();
      const ssize_t sent = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EINTR) continue;
        return false;
      }
      auto left = static_cast<std::size_t>(sent);
      while (!parts.empty() && left >= parts.front().iov_len) {
        left -= parts.front().iov_len;
        parts = parts.subspan(1);
      }
      if (left != 0) {
        parts.front().iov_base = static_cast<char*>(parts.front().iov_base) + left;
        parts.front().iov_len -= left;
      }
    }
    return true;
  }

 private:
  int fd_;
  pid_t peer_;
  bool foreign_ = false;
};

iovec iov(const void* data, std::size_t size) { return {const_cast<void*>(data), size}; }

/// Writes `reply`; a secret body is wiped once written (or once the write failed).
bool write_reply(Connection& conn, std::string& out, HttpReply& reply, unsigned version,
                 bool keep_alive) {
  serialize_reply(out, reply, version, keep_alive);
  if (reply.secret_body.empty()) {
    std::array<iovec, 1> parts{iov(out.data(), out.size())};
    return conn.write_all(parts);
  }
  std::array<iovec, 2> parts{iov(out.data(), out.size()),
                             iov(reply.secret_body.view().data(), reply.secret_body.size())};
  const bool written = conn.write_all(parts);
  reply.secret_body.wipe();
  return written;
}

/// After a request that carried a secret (PUT /v1/secrets, base64 in the body): wipes the parsed
/// body and the read buffer's bytes, unless a pipelined request is still waiting in it.
template <class Request>
void wipe_request(Request& req, beast::flat_buffer& buffer) {
  auto& body = req.body();
  OPENSSL_cleanse(body.data(), body.size());
  if (buffer.size() != 0) return;
  const auto space = buffer.prepare(buffer.capacity());
  OPENSSL_cleanse(space.data(), space.size());
}

void set_timeout(int fd, int option, std::chrono::milliseconds timeout) {
  // A zero timeval means "never time out": a deadline reached to the millisecond must not.
  timeout = std::max(timeout, std::chrono::milliseconds(1));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv));
}

/// Beast's SyncReadStream over a Connection that bounds a whole request, not each read: once a
/// request's first byte is in, its header and body must follow within `limit`, however slowly
/// they trickle (a per-read timeout alone lets one byte every minute hold a thread for ever).
/// Before that byte the connection's idle timeout applies. A request read whole by its first
/// recv, the usual case, costs no system call more; a longer one costs a setsockopt per read.
class RequestReader {
 public:
  RequestReader(Connection& conn, std::chrono::milliseconds idle, std::chrono::milliseconds limit)
      : conn_(conn), idle_(idle), limit_(limit) {}

  /// Before each request; `pending`: some of it is already buffered (pipelined), so its clock
  /// runs from now.
  void begin(bool pending) {
    if (narrowed_) {
      set_timeout(conn_.fd(), SO_RCVTIMEO, idle_);
      narrowed_ = false;
    }
    started_ = pending;
    if (started_) deadline_ = std::chrono::steady_clock::now() + limit_;
  }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    if (started_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline_ - std::chrono::steady_clock::now());
      if (left <= std::chrono::milliseconds::zero()) {
        ec = asio::error::timed_out;
        return 0;
      }
      set_timeout(conn_.fd(), SO_RCVTIMEO, std::min(left, idle_));
      narrowed_ = true;
    }
    const std::size_t n = conn_.read_some(buffers, ec);
    if (!started_ && n > 0) {
      started_ = true;
      deadline_ = std::chrono::steady_clock::now() + limit_;
    }
    return n;
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

 private:
  Connection& conn_;
  std::chrono::milliseconds idle_;
  std::chrono::milliseconds limit_;
  bool started_ = false;
  bool narrowed_ = false;  ///< SO_RCVTIMEO is below idle_ (restored by the next begin())
  std::chrono::steady_clock::time_point deadline_{};
};

/// Reads and discards what the client is still sending (at most 1 MiB, for at most a second), so
/// that closing after an early error reply does not reset the connection before it is read.
void drain(Connection& conn) {
  ::shutdown(conn.fd(), SHUT_WR);
  set_timeout(conn.fd(), SO_RCVTIMEO, std::chrono::milliseconds(100));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  std::array<char, 16384> scratch{};
  std::size_t total = 0;
  while (total < (1U << 20U) && std::chrono::steady_clock::now() < deadline) {
    boost::system::error_code ec;
    const auto n = conn.read_some(asio::buffer(scratch), ec);
    if (ec && ec != asio::error::timed_out) break;
    total += n;
  }
}

/// A connection's share of its socket's limits (in all and for its peer's uid), held from
/// accept until the connection ends, on its thread or as a watch stream: destroying the slot
/// gives the share back, so whatever way a connection ends, it is counted no longer.
class ConnectionSlot {
 public:
  /// The share for a new connection of `uid` on `kind`; nullopt at a limit. Call under mu.
  static std::optional<ConnectionSlot> take_locked(const std::shared_ptr<Impl>& owner, Socket kind,
                                                   uid_t uid) {
    Impl& self = *owner;
    auto& pool = self.pools.at(index(kind));
    const bool admin = kind == Socket::kAdmin;
    std::size_t limit = admin ? self.options.admin_max_connections : self.options.max_connections;
    // An eighth of the admin pool is root's alone: whoever else may connect there (the admin
    // group, or anyone when api.admin_socket_mode allows) never locks root out.
    if (admin && uid != 0 && limit > 1) limit -= std::max<std::size_t>(1, limit / 8);
    if (pool.open >= limit) return std::nullopt;
    const bool exempt = admin && uid == 0;
    const auto it = pool.per_uid.find(uid);
    if (!exempt && it != pool.per_uid.end() && it->second >= self.options.max_connections_per_uid)
      return std::nullopt;
    ++pool.open;
    ++pool.per_uid[uid];
    return ConnectionSlot(owner, kind, uid);
  }

  /// Takes a watch-stream share as well; false when the uid is at its watch limit.
  bool watch() {
    std::lock_guard lock(owner_->mu);
    auto& mine = owner_->watching_per_uid[uid_];
    if (mine >= owner_->options.max_watch_per_uid) {
      if (mine == 0) owner_->watching_per_uid.erase(uid_);
      return false;
    }
    ++mine;
    ++owner_->watching;
    watch_ = true;
    return true;
  }

  ConnectionSlot(ConnectionSlot&& o) noexcept
      : owner_(std::move(o.owner_)), kind_(o.kind_), uid_(o.uid_), watch_(o.watch_) {}
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(ConnectionSlot&&) = delete;
  ~ConnectionSlot() {
    if (!owner_) return;
    std::lock_guard lock(owner_->mu);
    auto& pool = owner_->pools.at(index(kind_));
    --pool.open;
    drop(pool.per_uid, uid_);
    if (watch_) {
      --owner_->watching;
      drop(owner_->watching_per_uid, uid_);
    }
  }
  [[nodiscard]] Impl& impl() const { return *owner_; }

 private:
  ConnectionSlot(std::shared_ptr<Impl> owner, Socket kind, uid_t uid)
      : owner_(std::move(owner)), kind_(kind), uid_(uid) {}
  static std::size_t index(Socket kind) { return kind == Socket::kAdmin ? 1 : 0; }
  /// Keeps the per-uid maps as small as the set of uids connected now.
  static void drop(std::unordered_map<uid_t, std::size_t>& counts, uid_t uid) {
    const auto it = counts.find(uid);
    if (it != counts.end() && --it->second == 0) counts.erase(it);
  }

  std::shared_ptr<Impl> owner_;
  Socket kind_;
  uid_t uid_;
  bool watch_ = false;
};

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

/// A watch stream waits for events, not requests: it moves from its connection thread to the
/// accepting io_context, where every stream is one coroutine and none holds a thread.
void hand_to_watch(ConnectionSlot slot, int fd, unsigned version, Watcher watcher) {
  Impl& self = slot.impl();
  UnixSocket sock(self.io);
  boost::system::error_code ec;
  sock.assign(asio::local::stream_protocol(), fd, ec);
  if (ec) {
    ::close(fd);
    return;
  }
  // co_spawn starts the stream on the io_context's thread; if that never runs again, destroying
  // the io_context destroys the stream and closes its socket.
  asio::co_spawn(self.io,
                 stream_watch(std::move(slot), std::move(sock), version, std::move(watcher)),
                 asio::detached);
}

/// RFC 9112 section 6.1: a request's only transfer coding we accept is a single "chunked".
/// Anything else is refused before the body is used, since a body this server would not frame
/// as the client meant would be read as the next request (request smuggling).
template <class Request>
std::optional<HttpReply> framing_refusal(const Request& req) {
  std::vector<std::string> codings;
  for (const auto& field : req) {
    if (field.name() != http::field::transfer_encoding) continue;
    const std::string_view value(field.value().data(), field.value().size());
    std::size_t start = 0;
    while (start <= value.size()) {
      std::size_t end = value.find(',', start);
      if (end == std::string_view::npos) end = value.size();
      std::string_view coding = value.substr(start, end - start);
      coding = coding.substr(0, coding.find(';'));
      while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) {
        coding.remove_prefix(1);
      }
      while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) {
        coding.remove_suffix(1);
      }
      std::string lower(coding);
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (!lower.empty()) codings.push_back(std::move(lower));
      start = end + 1;
    }
  }
  if (codings.empty()) {
    if (req.count(http::field::transfer_encoding) == 0) return std::nullopt;
    return error_reply(400, "bad_request", "Transfer-Encoding: empty");
  }
  for (const auto& c : codings) {
    if (c != "chunked" && c != "identity") {
      return error_reply(501, "not_implemented",
                         "Transfer-Encoding: coding \"" + c.substr(0, 40) +
                             "\" is not supported (only \"chunked\")");
    }
  }
  if (codings.size() == 1 && codings.front() == "chunked" &&
      req.count(http::field::content_length) == 0) {
    return std::nullopt;
  }
  return error_reply(400, "bad_request",
                     "Transfer-Encoding: expected exactly \"chunked\" and no Content-Length");
}

/// Whether a route hands out a credential (token, proof, unsealed secret) or writes one.
bool gives_credential(std::string_view method, std::string_view target) {
  const std::string_view path = target.substr(0, target.find('?'));
  return (method == "POST" && (path == "/v1/token" || path == "/v1/proof")) ||
         path.substr(0, 12) == "/v1/secrets/";
}

/// Before a credential leaves (or a secret is written): every process that now holds the client
/// end of the socket must still be the workload identified at connect. A process that connected
/// and then exec'd another program, or one that shares the socket with another program (fork,
/// SCM_RIGHTS), is refused (docs/threat-model.md). Root callers are not searched: root can be any
/// workload anyway, and searching every root process would cost the most.
std::optional<HttpReply> holder_refusal(Impl& self, int fd, std::string_view method,
                                        std::string_view target, const os::Selectors& identity,
                                        std::optional<ino_t>& peer_inode) {
  if (identity.uid == 0 || !gives_credential(method, target)) return std::nullopt;
  if (!peer_inode) {
    auto ino = os::unix_peer_inode(fd);
    if (!ino) return error_reply(403, "unidentified_peer", ino.error().message);
    peer_inode = *ino;
  }
  auto check = self.resolver.check_socket_holders(*peer_inode, identity);
  if (!check) return error_reply(403, "unidentified_peer", check.error().message);
  switch (check->verdict) {
    case os::HolderVerdict::kSame:
      return std::nullopt;
    case os::HolderVerdict::kIdentityChanged:
      return error_reply(403, "identity_changed", check->detail);
    case os::HolderVerdict::kShared:
      break;
  }
  return error_reply(403, "shared_socket", check->detail);
}

/// Who a watch stream's subscriber is, for the events it may see (EventBus).
Watcher watcher_of(Socket kind, const os::Selectors& s) {
  Watcher w;
  w.admin = kind == Socket::kAdmin;
  w.uid = s.uid;
  w.container_id = s.container_id;
  w.workload = workload_identity(s);
  return w;
}

/// Answers a watch request over the uid's watch limit (the request has been read whole).
void refuse_watch(int fd, unsigned version, std::size_t limit) {
  Connection conn(fd, 0);  // only written to
  std::string out;
  auto reply = error_reply(429, "limit_exceeded",
                           "watch: this uid already has " + std::to_string(limit) +
                               " watch streams open (api.max_watch_per_uid)");
  (void)write_reply(conn, out, reply, version, false);
}

/// One connection, served by its own thread with blocking calls: a request is read the moment
/// it arrives and answered by the thread that read it (docs/PERFORMANCE.md, "Thread per
/// connection"). Returns the HTTP version of a GET /v1/watch, which the caller hands on.
std::optional<unsigned> serve_connection(const std::shared_ptr<Impl>& owner, int fd, Socket kind,
                                         const Result<os::Selectors>& identity) {
  Impl& self = *owner;
  std::optional<HttpReply> refusal;
  if (!identity) {
    refusal = error_reply(403, "unidentified_peer", identity.error().message);
  } else if (kind == Socket::kAdmin && !admin_allowed(self, *identity)) {
    refusal = error_reply(403, "permission_denied",
                          "admin socket: uid " + std::to_string(identity->uid) +
                              " is neither root nor in the admin group");
  }
  set_timeout(fd, SO_RCVTIMEO, self.options.idle_timeout);
  set_timeout(fd, SO_SNDTIMEO, self.options.idle_timeout);
  Connection conn(fd, identity ? identity->pid : 0);
  RequestReader reader(conn, self.options.idle_timeout, self.options.request_timeout);
  std::optional<ino_t> peer_inode;  // the client's end of the socket, found when first needed
  beast::flat_buffer buffer;
  std::string out;
  out.reserve(2048);
  // Header fields and the body of one request live in this arena, reset per request.
  std::array<std::byte, 4096> arena_storage{};
  for (;;) {
    std::pmr::monotonic_buffer_resource arena(arena_storage.data(), arena_storage.size());
    const ArenaAlloc alloc(&arena);
    RequestParser parser(std::piecewise_construct, std::make_tuple(alloc), std::make_tuple(alloc));
    parser.header_limit(16 * 1024);
    parser.body_limit(self.options.max_body);
    boost::system::error_code ec;
    // The framing is checked before the body is read: a coding we would misread is never parsed.
    std::optional<HttpReply> unframed;
    reader.begin(buffer.size() != 0);
    http::read_header(reader, buffer, parser, ec);
    if (!ec) unframed = framing_refusal(parser.get());
    if (!ec && !unframed) http::read(reader, buffer, parser, ec);
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::timed_out || self.stopped) {
      return std::nullopt;
    }
    if (ec) {
      const bool too_big = ec == http::error::body_limit;
      auto reply = too_big ? error_reply(413, "payload_too_large",
                                         "request body exceeds " +
                                             std::to_string(self.options.max_body) + " bytes")
                           : error_reply(400, "bad_request", "HTTP: " + ec.message());
      if (parser.is_header_done() && parser.get().method() == http::verb::put) {
        wipe_request(parser.get(), buffer);
      }
      if (write_reply(conn, out, reply, 11, false)) drain(conn);
      return std::nullopt;
    }
    auto& req = parser.get();
    bool keep_alive = req.keep_alive() && !refusal;
    HttpReply reply;
    if (refusal) {
      reply = std::move(*refusal);
    } else if (conn.foreign()) {
      reply = error_reply(403, "shared_socket",
                          "bytes on this connection were written by a process other than the "
                          "one that connected (pid " +
                              std::to_string(identity->pid) + ")");
      keep_alive = false;
    } else if (unframed) {
      // Closed after the answer: what follows an unframed body is never read as a request.
      reply = std::move(*unframed);
      keep_alive = false;
    } else if (req.count(kSpiffeHeader) != 1 || req[kSpiffeHeader] != "true") {
      reply = error_reply(400, "missing_spiffe_header",
                          "every request must carry the header \"workload.spiffe.io: true\", "
                          "exactly once");
    } else if (req.target().substr(0, req.target().find('?')) == "/v1/watch") {
      if (req.method() == http::verb::get) return req.version();
      reply = error_reply(405, "method_not_allowed", "GET /v1/watch");
    } else if (auto held = holder_refusal(self, fd, req.method_string(), req.target(), *identity,
                                          peer_inode)) {
      reply = std::move(*held);
      keep_alive = false;
    } else {
      const std::string_view body(req.body().data(), req.body().size());
      try {
        reply = route(self.service, kind, *identity, req.method_string(), req.target(), body);
      } catch (const std::exception& e) {
        // Still answered, and the body below still wiped.
        reply = error_reply(500, "internal", std::string("request failed: ") + e.what());
        keep_alive = false;
      }
    }
    if (req.method() == http::verb::put) wipe_request(req, buffer);
    const bool written = write_reply(conn, out, reply, req.version(), keep_alive);
    if (written && unframed) drain(conn);  // the unread body must not reset the answer
    if (!written || !keep_alive) return std::nullopt;
  }
}

/// Counts a connection closed at accept and logs the count at most once per interval.
void note_refused_locked(Impl& self) {
  ++self.refused;
  const auto now = std::chrono::steady_clock::now();
  if (now - self.refused_logged < std::chrono::seconds(10)) return;
  spdlog::warn(
      "local api: {} connection(s) closed at accept since the last report (a socket's "
      "api.max_connections / api.admin_max_connections or a uid's api.max_connections_per_uid "
      "reached)",
      self.refused);
  self.refused = 0;
  self.refused_logged = now;
}

/// Starts the thread of an accepted connection, or closes it when the server is stopping, or
/// its socket or its peer's uid is at a connection limit. A small stack: the deepest call is a
/// token mint or an unseal.
void start_connection(const std::shared_ptr<Impl>& self, int fd, Socket kind) {
  // Only the uid here (one getsockopt): the full identity is resolved on the connection's thread.
  const auto peer = os::peer_credentials(fd);
  std::unique_lock accepting(self->mu);
  // A slot gives its share back under `mu`: it must only be destroyed once the lock is released.
  auto slot =
      !self->stopped && peer ? ConnectionSlot::take_locked(self, kind, peer->uid) : std::nullopt;
  if (!slot) {
    if (!self->stopped) note_refused_locked(*self);
    ::close(fd);
    return;
  }
  self->open.insert(fd);
  accepting.unlock();
  auto finish = [self, fd](bool handed_off) {
    std::lock_guard lock(self->mu);
    self->open.erase(fd);
    // Closed under the lock: stop() never shuts down a number the kernel has given to another.
    if (!handed_off) {
      ::shutdown(fd, SHUT_WR);
      ::close(fd);
    }
    self->idle.notify_all();
  };
  struct Start {
    std::shared_ptr<Impl> self;
    int fd;
    Socket kind;
    ConnectionSlot slot;
    decltype(finish) done;
  };
  auto* start = new Start{self, fd, kind, std::move(*slot), finish};
  slot.reset();
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 512 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t thread{};
  const int rc = pthread_create(
      &thread, &attr,
      [](void* arg) -> void* {
        std::unique_ptr<Start> s(static_cast<Start*>(arg));
        pthread_setname_np(pthread_self(), s->kind == Socket::kAdmin ? "api-admin" : "api-conn");
        std::optional<unsigned> watch;
        std::optional<Watcher> watcher;
        try {
          // Identity from the kernel, once per connection, before any byte of the request is
          // read; here rather than on the accepting thread, which it would serialise.
          const auto identity = s->self->resolver.resolve_socket(s->fd);
          watch = serve_connection(s->self, s->fd, s->kind, identity);
          if (watch && !s->slot.watch()) {
            refuse_watch(s->fd, *watch, s->self->options.max_watch_per_uid);
            watch.reset();
          }
          if (watch) watcher = watcher_of(s->kind, *identity);
        } catch (const std::exception& e) {
          spdlog::error("local api: connection ended by an error: {}", e.what());
          watch.reset();
        }
        // Out of the open set before the watch may close it and the number be reused.
        s->done(watch.has_value());
        if (watch) hand_to_watch(std::move(s->slot), s->fd, *watch, std::move(*watcher));
        return nullptr;
      },
      start);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    spdlog::warn("local api: no thread for a new connection ({}); closed", std::strerror(rc));
    delete start;
    finish(false);
  }
}

asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self, Acceptor& acceptor, Socket kind) {
  for (;;) {
    auto [ec, accepted] = co_await acceptor.async_accept(kNoThrow);
    if (self->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    boost::system::error_code released;
    const int fd = accepted.release(released);
    if (released) continue;
    // The connection thread blocks on the socket: asio made it non-blocking.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
      ::close(fd);
      continue;
    }
    start_connection(self, fd, kind);
  }
}

}  // namespace

Result<std::unique_ptr<LocalServer>> LocalServer::bind(asio::io_context& io,
                                                       LocalServerOptions options,
                                                       WorkloadService& service,
                                                       os::WorkloadIdentityResolver& resolver,
                                                       EventBus& bus) {
  auto impl = std::make_shared<Impl>(io, std::move(options), service, resolver, bus);
  if (!impl->options.agent_uid) impl->options.agent_uid = ::geteuid();
  const uid_t owner = *impl->options.agent_uid;
  auto workload = bind_socket(io, impl->options.workload_socket, impl->options.workload_socket_mode,
                              owner, std::nullopt);
  if (!workload) return fail(std::move(workload).error());
  impl->workload.emplace(std::move(*workload));
  if (!impl->options.admin_socket.empty()) {
    auto admin = bind_socket(io, impl->options.admin_socket, impl->options.admin_socket_mode, owner,
                             impl->options.admin_gid);
    if (!admin) return fail(std::move(admin).error());
    impl->admin.emplace(std::move(*admin));
  }
  return std::unique_ptr<LocalServer>(new LocalServer(std::move(impl)));
}

void LocalServer::serve() {
  if (serving_ || impl_->stopped) return;
  serving_ = true;
  if (impl_->admin) {
    asio::co_spawn(impl_->io, accept_loop(impl_, *impl_->admin, Socket::kAdmin), asio::detached);
  }
  asio::co_spawn(impl_->io, accept_loop(impl_, *impl_->workload, Socket::kWorkload),
                 asio::detached);
}

Result<std::unique_ptr<LocalServer>> LocalServer::start(asio::io_context& io,
                                                        LocalServerOptions options,
                                                        WorkloadService& service,
                                                        os::WorkloadIdentityResolver& resolver,
                                                        EventBus& bus) {
  auto server = bind(io, std::move(options), service, resolver, bus);
  if (server) (*server)->serve();
  return server;
}

LocalServer::LocalServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

LocalServer::~LocalServer() {
  if (!impl_->stopped) stop();
  // Connections still open end here: their blocked reads and writes return, their threads exit.
  std::unique_lock lock(impl_->mu);
  for (const int fd : impl_->open) ::shutdown(fd, SHUT_RDWR);
  impl_->idle.wait(lock, [this] { return impl_->open.empty(); });
  std::lock_guard bus_lock(impl_->bus_mu);
  impl_->server_gone = true;
}

ConnectionCounts LocalServer::connections() const {
  std::lock_guard lock(impl_->mu);
  return {impl_->pools[0].open, impl_->pools[1].open, impl_->watching};
}

void LocalServer::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopped = true;
  }
  boost::system::error_code ignored;
  if (impl_->workload) impl_->workload->close(ignored);
  if (impl_->admin) impl_->admin->close(ignored);
  impl_->bus.close_all();
}

}  // namespace warden::agent::api
