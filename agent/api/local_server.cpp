#include "agent/api/local_server.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory_resource>
#include <mutex>
#include <pthread.h>
#include <string>
#include <unistd.h>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include "agent/api/handlers.h"
#include "agent/api/local_connection.h"
#include "agent/api/local_http.h"
#include "agent/api/local_server_impl.h"
#include "agent/api/watch_stream.h"
#include "platform/os/unique_fd.h"

namespace warden::agent::api {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);

namespace {

using Impl = LocalServer::Impl;
using namespace detail;  // NOLINT(google-build-using-namespace): the server's own parts

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

/// Before a credential leaves (or a secret is written): every process that now holds the client
/// end of the socket must still be the workload identified at connect. A process that connected
/// and then exec'd another program, or one that shares the socket with another program (fork,
/// SCM_RIGHTS), is refused (docs/threat-model.md). Root callers are not searched: root can be any
/// workload anyway, and searching every root process would cost the most.
std::optional<HttpReply> holder_refusal(Impl& self, int fd, std::string_view method,
                                        std::string_view target, const os::Selectors& identity,
                                        std::optional<ino_t>& peer_inode) {
  if (identity.uid == 0 || !gives_credential(method, target)) return std::nullopt;
  // A client in another network namespace (a container) connects through a socket the kernel
  // creates in that namespace, out of socket diag's reach: only the connected process is checked.
  if (!peer_inode) {
    auto ino = os::unix_peer_inode(fd);
    if (ino) {
      peer_inode = *ino;
    } else if (identity.container_id.empty()) {
      return error_reply(403, "unidentified_peer", ino.error().message);
    }
  }
  auto check = peer_inode ? self.resolver.check_socket_holders(*peer_inode, identity)
                          : self.resolver.check_connected_process(identity);
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
  Connection conn(fd, identity ? identity->pid : 0, self.options.idle_timeout,
                  self.options.request_timeout);
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
    conn.begin_request(buffer.size() != 0);
    http::read_header(conn, buffer, parser, ec);
    if (!ec) unframed = framing_refusal(parser.get());
    if (!ec && !unframed) http::read(conn, buffer, parser, ec);
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
void start_connection(const std::shared_ptr<Impl>& self, os::UniqueFd accepted, Socket kind) {
  // Only the uid here (one getsockopt): the full identity is resolved on the connection's thread.
  const auto peer = os::peer_credentials(accepted.get());
  std::unique_lock accepting(self->mu);
  // A slot gives its share back under `mu`: it must only be destroyed once the lock is released.
  auto slot =
      !self->stopped && peer ? ConnectionSlot::take_locked(self, kind, peer->uid) : std::nullopt;
  if (!slot) {
    if (!self->stopped) note_refused_locked(*self);
    return;
  }
  // From here the open set and `finish` own it: it is closed under `mu`, after leaving the set.
  const int fd = accepted.release();
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
        std::optional<std::pair<unsigned, Watcher>> stream;  // a watch's HTTP version, watcher
        try {
          // Identity from the kernel, once per connection, before any byte of the request is
          // read; here rather than on the accepting thread, which it would serialise.
          const auto identity = s->self->resolver.resolve_socket(s->fd);
          const auto watch = serve_connection(s->self, s->fd, s->kind, identity);
          if (watch && !s->slot.watch()) {
            refuse_watch(s->fd, *watch, s->self->options.max_watch_per_uid);
          } else if (watch) {
            stream.emplace(*watch, watcher_of(s->kind, *identity));
          }
        } catch (const std::exception& e) {
          spdlog::error("local api: connection ended by an error: {}", e.what());
          stream.reset();
        }
        // Out of the open set before the watch may close it and the number be reused.
        s->done(stream.has_value());
        if (stream) {
          hand_to_watch(std::move(s->slot), s->fd, stream->first, std::move(stream->second));
        }
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
    os::UniqueFd fd(accepted.release(released));
    if (released) continue;
    // The connection thread blocks on the socket: asio made it non-blocking.
    const int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK) != 0) continue;
    start_connection(self, std::move(fd), kind);
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
