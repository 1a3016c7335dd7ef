#pragma once
// The local HTTP/1.1 + JSON API over two Unix sockets (workload and admin), on one io_context.
// Each connection's identity is resolved once, from the kernel, at accept; every request must
// carry `workload.spiffe.io: true`; bodies are capped; GET /v1/watch streams JSON lines.
// Run the io_context on one thread: sessions, the event bus and WorkloadService calls share it
// without locks (more threads were measured slower on 2 cores; see docs/PERFORMANCE.md).
// Routes and shapes: docs/local-api.md.

#include <sys/types.h>

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
  std::size_t max_body = 64 * 1024;
  std::size_t max_connections = 1024;
};

class LocalServer {
 public:
  /// Binds both sockets (replacing stale socket files), applies modes and ownership, and starts
  /// accepting on `io`. The service, resolver and bus must outlive the server.
  static Result<std::unique_ptr<LocalServer>> start(boost::asio::io_context& io,
                                                    LocalServerOptions options,
                                                    WorkloadService& service,
                                                    os::WorkloadIdentityResolver& resolver,
                                                    EventBus& bus);
  ~LocalServer();
  LocalServer(const LocalServer&) = delete;
  LocalServer& operator=(const LocalServer&) = delete;

  /// Stops accepting and closes the listening sockets (call on the io_context's thread).
  void stop();

  struct Impl;

 private:
  explicit LocalServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace warden::agent::api
