#pragma once
// Internal to LocalServer: one accepted Unix-socket connection, read and written with blocking
// calls by its connection's thread.

#include <sys/types.h>
#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <span>
#include <string>

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include "agent/api/handlers.h"

namespace warden::agent::api::detail {

/// SO_RCVTIMEO / SO_SNDTIMEO of `fd`; never zero (which would mean "no timeout").
void set_timeout(int fd, int option, std::chrono::milliseconds timeout);

/// Beast's SyncReadStream over the socket. Receives time out (SO_RCVTIMEO) so an idle connection
/// ends. Every chunk read carries its writer's pid (SO_PASSCRED on the listener): a chunk written
/// by any process but `peer` (the one identified at connect, 0 when none was) marks the
/// connection foreign, and no request on it is answered.
///
/// A request is bounded whole, not per read: once its first byte is in (begin_request), its
/// header and body must follow within `request_limit`, however slowly they trickle (a per-read
/// timeout alone lets one byte every minute hold a thread for ever). Before that byte the idle
/// timeout applies. A request read whole by its first recv, the usual case, costs no system call
/// more; a longer one costs a setsockopt per read.
class Connection {
 public:
  Connection(int fd, pid_t peer, std::chrono::milliseconds idle = std::chrono::minutes(1),
             std::chrono::milliseconds request_limit = std::chrono::seconds(10))
      : fd_(fd), peer_(peer), idle_(idle), limit_(request_limit) {}
  [[nodiscard]] int fd() const { return fd_; }
  /// True once any byte came from a process other than the identified peer.
  [[nodiscard]] bool foreign() const { return foreign_; }

  /// Before each request; `pending`: some of it is already buffered (pipelined), so its clock
  /// runs from now.
  void begin_request(bool pending);
  /// No request deadline until the next begin_request (draining after the last reply).
  void end_request() {
    started_ = false;
    bounded_ = false;
  }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    boost::asio::mutable_buffer into;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      into = *it;
      if (into.size() != 0) break;
    }
    return receive(into.data(), into.size(), ec);
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    boost::system::error_code ec;
    const auto n = read_some(buffers, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }

  /// Writes every byte of `parts` (or fails: peer gone, or the send timeout passed).
  bool write_all(std::span<iovec> parts);

 private:
  std::size_t receive(void* data, std::size_t size, boost::system::error_code& ec);

  int fd_;
  pid_t peer_;
  bool foreign_ = false;
  std::chrono::milliseconds idle_;
  std::chrono::milliseconds limit_;
  bool bounded_ = true;  ///< reads belong to a request (not a drain)
  bool started_ = false;
  bool narrowed_ = false;  ///< SO_RCVTIMEO is below idle_ (restored by the next begin_request)
  std::chrono::steady_clock::time_point deadline_{};
};

/// Writes status line, headers and body into `out` (reused per connection): one buffer, one
/// write, and no header container to allocate per response. A secret body stays in its locked
/// buffer: `out` then gets the head only.
void serialize_reply(std::string& out, const HttpReply& reply, unsigned version, bool keep_alive);

/// Writes `reply`; a secret body is wiped once written (or once the write failed).
bool write_reply(Connection& conn, std::string& out, HttpReply& reply, unsigned version,
                 bool keep_alive);

/// Reads and discards what the client is still sending (at most 1 MiB, for at most a second), so
/// that closing after an early error reply does not reset the connection before it is read.
void drain(Connection& conn);

}  // namespace warden::agent::api::detail
