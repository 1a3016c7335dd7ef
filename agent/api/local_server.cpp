#include "agent/api/local_server.h"

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory_resource>
#include <pthread.h>
#include <string>
#include <thread>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/crypto.h>

#include "agent/api/handlers.h"

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
  /// Where connections are served, round robin; empty: on `io`. Owned by LocalServer, used
  /// only by the accept loops, which end at stop().
  std::vector<asio::io_context*> shards;
  std::atomic<std::size_t> next_shard = 0;
  std::atomic<std::size_t> connections = 0;
  std::atomic<bool> stopped = false;
};

namespace {

using Impl = LocalServer::Impl;

Result<Acceptor> bind_socket(asio::io_context& io, const std::filesystem::path& path, mode_t mode,
                             std::optional<gid_t> gid) {
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
  // Ownership and mode before listen(): nobody can connect before the permissions are final.
  if (gid && ::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    return fail(ErrorCode::kPermissionDenied, "local api: chown " + path.string() + " to gid " +
                                                  std::to_string(*gid) + ": " +
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
  if (s.uid == 0 || s.uid == ::geteuid()) return true;
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

/// Writes `reply`; a secret body is wiped once written (or once the write failed).
asio::awaitable<boost::system::error_code> write_reply(UnixSocket& sock, std::string& out,
                                                       HttpReply& reply, unsigned version,
                                                       bool keep_alive) {
  serialize_reply(out, reply, version, keep_alive);
  boost::system::error_code result;
  if (reply.secret_body.empty()) {
    auto [ec, n] = co_await asio::async_write(sock, asio::buffer(out), kNoThrow);
    result = ec;
  } else {
    const std::array<asio::const_buffer, 2> parts{
        asio::buffer(out), asio::buffer(reply.secret_body.view().data(), reply.secret_body.size())};
    auto [ec, n] = co_await asio::async_write(sock, parts, kNoThrow);
    result = ec;
    reply.secret_body.wipe();
  }
  co_return result;
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

/// Reads and discards what the client is still sending (bounded in bytes and time), so that
/// closing after an early error reply does not reset the connection before the reply is read.
asio::awaitable<void> drain_and_close(UnixSocket& sock) {
  sock.shutdown(asio::socket_base::shutdown_send);
  asio::steady_timer deadline(sock.get_executor());
  deadline.expires_after(std::chrono::seconds(1));
  deadline.async_wait([&sock](boost::system::error_code ec) {
    if (!ec) sock.close();
  });
  std::array<char, 16384> scratch{};
  std::size_t total = 0;
  while (sock.is_open() && total < (1u << 20)) {
    auto [ec, n] = co_await sock.async_read_some(asio::buffer(scratch), kNoThrow);
    if (ec) break;
    total += n;
  }
  deadline.cancel();
  boost::system::error_code ignored;
  sock.close(ignored);
}

asio::awaitable<void> stream_watch(Impl& self, UnixSocket& sock, unsigned version) {
  http::response<http::empty_body> res{http::status::ok, version};
  res.set(http::field::content_type, "application/x-ndjson");
  res.chunked(true);
  http::response_serializer<http::empty_body> sr{res};
  auto [ec_header, n_header] = co_await http::async_write_header(sock, sr, kNoThrow);
  if (ec_header) co_return;
  auto sub = self.bus.subscribe(co_await asio::this_coro::executor);
  struct Leave {
    EventBus& bus;
    std::shared_ptr<Subscription>& sub;
    ~Leave() { bus.unsubscribe(sub); }
  } leave{self.bus, sub};
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
    sub->wake().expires_at(asio::steady_timer::time_point::max());
    co_await sub->wake().async_wait(kNoThrow);
  }
}

// The session owns a reference to Impl: at shutdown the io_context destroys suspended sessions
// after the server itself may have gone.
asio::awaitable<void> session(std::shared_ptr<Impl> owner, UnixSocket sock, Socket kind,
                              Result<os::Selectors> identity) {
  Impl& self = *owner;
  ++self.connections;
  struct Count {
    Impl& s;
    ~Count() { --s.connections; }
  } count{self};

  std::optional<HttpReply> refusal;
  if (!identity) {
    refusal = error_reply(403, "unidentified_peer", identity.error().message);
  } else if (kind == Socket::kAdmin && !admin_allowed(self, *identity)) {
    refusal = error_reply(403, "permission_denied",
                          "admin socket: uid " + std::to_string(identity->uid) +
                              " is neither root nor in the admin group");
  }

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
    auto [ec, n] = co_await http::async_read(sock, buffer, parser, kNoThrow);
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
      break;
    }
    if (ec) {
      const bool too_big = ec == http::error::body_limit;
      auto reply = too_big ? error_reply(413, "payload_too_large",
                                         "request body exceeds " +
                                             std::to_string(self.options.max_body) + " bytes")
                           : error_reply(400, "bad_request", "HTTP: " + ec.message());
      co_await write_reply(sock, out, reply, 11, false);
      co_await drain_and_close(sock);
      co_return;
    }
    auto& req = parser.get();
    const bool keep_alive = req.keep_alive() && !refusal;
    HttpReply reply;
    if (refusal) {
      reply = std::move(*refusal);
    } else if (req[kSpiffeHeader] != "true") {
      reply = error_reply(400, "missing_spiffe_header",
                          "every request must carry the header \"workload.spiffe.io: true\"");
    } else if (req.target().substr(0, req.target().find('?')) == "/v1/watch") {
      if (req.method() == http::verb::get) {
        co_await stream_watch(self, sock, req.version());
        break;
      }
      reply = error_reply(405, "method_not_allowed", "GET /v1/watch");
    } else {
      const std::string_view body(req.body().data(), req.body().size());
      reply = route(self.service, kind, *identity, req.method_string(), req.target(), body);
      if (req.method() == http::verb::put) wipe_request(req, buffer);
    }
    const auto wec = co_await write_reply(sock, out, reply, req.version(), keep_alive);
    if (wec || !keep_alive) break;
  }
  boost::system::error_code ignored;
  sock.shutdown(asio::socket_base::shutdown_send, ignored);
  sock.close(ignored);
}

asio::awaitable<void> accept_loop(std::shared_ptr<Impl> self, Acceptor& acceptor, Socket kind) {
  for (;;) {
    // Accepted on the acceptor's own io_context, then handed to a connection thread's: a pending
    // accept made for another io_context would hold a socket of it, destroyed only with this
    // io_context, after the connection threads' are gone.
    auto [ec, accepted] = co_await acceptor.async_accept(kNoThrow);
    if (self->stopped || ec == asio::error::operation_aborted) co_return;
    if (ec) continue;
    if (self->connections >= self->options.max_connections) {
      boost::system::error_code ignored;
      accepted.close(ignored);
      continue;
    }
    // Identity from the kernel, once per connection, before any byte of the request is read.
    auto identity = self->resolver.resolve_socket(accepted.native_handle());
    if (self->shards.empty()) {
      auto ex = accepted.get_executor();
      asio::co_spawn(ex, session(self, std::move(accepted), kind, std::move(identity)),
                     asio::detached);
      continue;
    }
    asio::io_context& serve_on = *self->shards[self->next_shard.fetch_add(1) % self->shards.size()];
    boost::system::error_code moved;
    const auto fd = accepted.release(moved);
    if (moved) continue;
    UnixSocket sock(serve_on);
    sock.assign(asio::local::stream_protocol(), fd, moved);
    if (moved) {
      ::close(fd);
      continue;
    }
    asio::co_spawn(serve_on, session(self, std::move(sock), kind, std::move(identity)),
                   asio::detached);
  }
}

}  // namespace

/// One io_context run by one thread: its connections need no locks, and shards use every core.
struct LocalServer::Shard {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> work = asio::make_work_guard(io);
  std::thread thread;
};

Result<std::unique_ptr<LocalServer>> LocalServer::bind(asio::io_context& io,
                                                       LocalServerOptions options,
                                                       WorkloadService& service,
                                                       os::WorkloadIdentityResolver& resolver,
                                                       EventBus& bus) {
  auto impl = std::make_shared<Impl>(io, std::move(options), service, resolver, bus);
  auto workload = bind_socket(io, impl->options.workload_socket, impl->options.workload_socket_mode,
                              std::nullopt);
  if (!workload) return fail(std::move(workload).error());
  impl->workload.emplace(std::move(*workload));
  if (!impl->options.admin_socket.empty()) {
    auto admin = bind_socket(io, impl->options.admin_socket, impl->options.admin_socket_mode,
                             impl->options.admin_gid);
    if (!admin) return fail(std::move(admin).error());
    impl->admin.emplace(std::move(*admin));
  }
  return std::unique_ptr<LocalServer>(new LocalServer(std::move(impl)));
}

void LocalServer::serve() {
  if (!shards_.empty() || impl_->stopped) return;
  for (unsigned i = 0; i < impl_->options.session_threads; ++i) {
    auto& shard = *shards_.emplace_back(std::make_unique<Shard>());
    shard.thread = std::thread([&shard] { shard.io.run(); });
    const std::string name = "api-" + std::to_string(i);
    pthread_setname_np(shard.thread.native_handle(), name.c_str());
    impl_->shards.push_back(&shard.io);
  }
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
  // Connections still open end here; destroying each io_context destroys its sessions.
  for (auto& shard : shards_) {
    shard->work.reset();
    shard->io.stop();
  }
  for (auto& shard : shards_) shard->thread.join();
  shards_.clear();
}

void LocalServer::stop() {
  impl_->stopped = true;
  boost::system::error_code ignored;
  if (impl_->workload) impl_->workload->close(ignored);
  if (impl_->admin) impl_->admin->close(ignored);
  impl_->bus.close_all();
}

}  // namespace warden::agent::api
