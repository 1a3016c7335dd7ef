#pragma once
// The local HTTP/1.1 + JSON API over two Unix sockets (workload and admin).
// Each connection's identity is resolved once, from the kernel, at accept; every request must
// carry `workload.spiffe.io: true`; bodies are capped; GET /v1/watch streams JSON lines.
// Connections are accepted on the io_context given to start(), which must run on one thread, and
// each is served by a thread of its own with blocking reads and writes, the fastest answer to a
// workload waiting on its request (docs/PERFORMANCE.md); WorkloadService is called from these
// threads at once. Watch streams, which wait on events, run on the io_context.
// Routes and shapes: docs/local-api.md.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <optional>

#include <boost/asio/io_context.hpp>

#include "agent/api/event_bus.h"
#include "agent/api/workload_service.h"
#include "platform/base/error.h"
#include "platform/os/workload_identity.h"

namespace warden::agent::api {

struct LocalServerOptions {
  std::filesystem::path workload_socket;
  mode_t workload_socket_mode = 0666;
  std::filesystem::path admin_socket;  ///< empty: no admin socket
  mode_t admin_socket_mode = 0660;
  /// Group that owns the admin socket and may use it (besides root). nullopt: the socket keeps
  /// the creating process's group and only root (and the agent's own uid) may use it.
  std::optional<gid_t> admin_gid;
  /// The uid the agent serves as: it owns both socket files and may use the admin socket. Set it
  /// when the agent binds as root and then drops privileges (the uid at bind is not the one it
  /// runs as). nullopt: the effective uid at bind.
  std::optional<uid_t> agent_uid;
  std::size_t max_body = 64 * 1024;
  /// Workload-socket connections open at once, watch streams included (each request/response
  /// connection has a thread); more are closed at accept.
  std::size_t max_connections = 1024;
  /// Admin-socket connections open at once: a pool of their own, so that workloads filling the
  /// workload socket never lock the administrator out. An eighth of it (at least one) is kept
  /// for root.
  std::size_t admin_max_connections = 64;
  /// Connections one uid may hold open on each socket, so that no uid takes a socket's whole
  /// pool. Root is held to it on the workload socket (rootful containers run as uid 0) but not on
  /// the admin socket (the administrator's way in stays open).
  std::size_t max_connections_per_uid = 128;
  /// Watch streams one uid may hold open (they also count as its connections).
  std::size_t max_watch_per_uid = 16;
  /// A connection that sends nothing between requests (or reads nothing of a reply) for this
  /// long is closed.
  std::chrono::milliseconds idle_timeout{60'000};
  /// From a request's first byte to its last (header and body): a sender that trickles its
  /// request is closed at this deadline however often it sends a byte.
  std::chrono::milliseconds request_timeout{10'000};
};

/// Connections open at a moment (watch streams counted in their socket's figure too).
struct ConnectionCounts {
  std::size_t workload = 0;
  std::size_t admin = 0;
  std::size_t watching = 0;
};

class LocalServer {
 public:
  /// Binds both sockets (replacing stale socket files) and applies modes and ownership; nothing
  /// is accepted before serve(). The service, resolver and bus must outlive the server.
  static Result<std::unique_ptr<LocalServer>> bind(boost::asio::io_context& io,
                                                   LocalServerOptions options,
                                                   WorkloadService& service,
                                                   os::WorkloadIdentityResolver& resolver,
                                                   EventBus& bus);
  /// bind(), then serve().
  static Result<std::unique_ptr<LocalServer>> start(boost::asio::io_context& io,
                                                    LocalServerOptions options,
                                                    WorkloadService& service,
                                                    os::WorkloadIdentityResolver& resolver,
                                                    EventBus& bus);
  /// Starts accepting on `io`. Separate from bind() so that a daemon can bind as root and drop
  /// privileges before any connection thread exists.
  void serve();
  ~LocalServer();
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  /// Stops accepting and closes the listening sockets (call on the io_context's thread).
  /// Open connections are closed by the destructor, which waits for their threads.
  void stop();

  /// What is open now (any thread): for tests and diagnostics.
  [[nodiscard]] ConnectionCounts connections() const;

  struct Impl;

 private:
  explicit LocalServer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
  bool serving_ = false;
};

}  // namespace warden::agent::api
