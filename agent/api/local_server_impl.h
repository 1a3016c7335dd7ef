#pragma once
// Internal to LocalServer: its shared state and the connection shares it hands out. Shared with
// the watch streams, which outlive their connection's thread on the io_context.

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include "agent/api/handlers.h"
#include "agent/api/local_server.h"

namespace warden::agent::api {

using Acceptor = boost::asio::local::stream_protocol::acceptor;

struct LocalServer::Impl {
  Impl(boost::asio::io_context& io_, LocalServerOptions options_, WorkloadService& service_,
       os::WorkloadIdentityResolver& resolver_, EventBus& bus_)
      : io(io_), options(std::move(options_)), service(service_), resolver(resolver_), bus(bus_) {}

  boost::asio::io_context& io;
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

namespace detail {

/// A connection's share of its socket's limits (in all and for its peer's uid), held from
/// accept until the connection ends, on its thread or as a watch stream: destroying the slot
/// gives the share back, so whatever way a connection ends, it is counted no longer.
class ConnectionSlot {
 public:
  /// The share for a new connection of `uid` on `kind`; nullopt at a limit. Call under mu.
  static std::optional<ConnectionSlot> take_locked(const std::shared_ptr<LocalServer::Impl>& owner,
                                                   Socket kind, uid_t uid) {
    LocalServer::Impl& self = *owner;
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
  [[nodiscard]] LocalServer::Impl& impl() const { return *owner_; }

 private:
  ConnectionSlot(std::shared_ptr<LocalServer::Impl> owner, Socket kind, uid_t uid)
      : owner_(std::move(owner)), kind_(kind), uid_(uid) {}
  static std::size_t index(Socket kind) { return kind == Socket::kAdmin ? 1 : 0; }
  /// Keeps the per-uid maps as small as the set of uids connected now.
  static void drop(std::unordered_map<uid_t, std::size_t>& counts, uid_t uid) {
    const auto it = counts.find(uid);
    if (it != counts.end() && --it->second == 0) counts.erase(it);
  }

  std::shared_ptr<LocalServer::Impl> owner_;
  Socket kind_;
  uid_t uid_;
  bool watch_ = false;
};

}  // namespace detail
}  // namespace warden::agent::api
