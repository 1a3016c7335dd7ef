#include "agent/api/local_connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>

#include <boost/asio/error.hpp>
#include <boost/beast/http/status.hpp>

#include "platform/os/workload_identity.h"

namespace warden::agent::api::detail {
namespace asio = boost::asio;
namespace http = boost::beast::http;

void set_timeout(int fd, int option, std::chrono::milliseconds timeout) {
  // A zero timeval means "never time out": a deadline reached to the millisecond must not.
  timeout = std::max(timeout, std::chrono::milliseconds(1));
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, option, &tv, sizeof(tv));
}

void Connection::begin_request(bool pending) {
  if (narrowed_) {
    set_timeout(fd_, SO_RCVTIMEO, idle_);
    narrowed_ = false;
  }
  bounded_ = true;
  started_ = pending;
  if (started_) deadline_ = std::chrono::steady_clock::now() + limit_;
}

// The one read loop: the request's deadline, the read, and the writer check of every chunk.
std::size_t Connection::receive(void* data, std::size_t size, boost::system::error_code& ec) {
  if (started_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds::zero()) {
      ec = asio::error::timed_out;
      return 0;
    }
    set_timeout(fd_, SO_RCVTIMEO, std::min(left, idle_));
    narrowed_ = true;
  }
  for (;;) {
    const auto chunk = os::receive_with_sender(fd_, data, size);
    const ssize_t n = chunk.size;
    if (n > 0) {
      if (chunk.sender != peer_ || peer_ == 0) foreign_ = true;
      ec = {};
      if (!started_ && bounded_) {
        started_ = true;
        deadline_ = std::chrono::steady_clock::now() + limit_;
      }
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

bool Connection::write_all(std::span<iovec> parts) {
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

iovec iov(const void* data, std::size_t size) { return {const_cast<void*>(data), size}; }

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

void drain(Connection& conn) {
  conn.end_request();
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

}  // namespace warden::agent::api::detail
