#include <linux/inet_diag.h>
#include <linux/kcmp.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <unistd.h>
#include <vector>

#include "platform/os/unique_fd.h"
#include "platform/os/workload_identity.h"

namespace warden::os {
namespace {

std::string errno_text() { return std::strerror(errno); }

}  // namespace

Result<PeerCredentials> peer_credentials(int socket_fd) {
  struct ucred cred {};
  socklen_t len = sizeof(cred);
  if (getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail(ErrorCode::kIo, "workload identity: SO_PEERCRED failed: " + errno_text());
  }
  if (cred.pid <= 0) {
    return fail(ErrorCode::kPermissionDenied,
                "workload identity: peer has no pid (expected a process, found pid " +
                    std::to_string(cred.pid) + ")");
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

Status enable_sender_credentials(int listening_fd) {
  const int on = 1;
  if (::setsockopt(listening_fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)) != 0) {
    return fail(ErrorCode::kIo, "workload identity: SO_PASSCRED failed: " + errno_text());
  }
  return ok();
}

ReceivedChunk receive_with_sender(int socket_fd, void* data, std::size_t size) {
  iovec io{data, size};
  // Room for the credentials only: descriptors a client passes (SCM_RIGHTS) do not fit, and
  // the kernel then discards them instead of installing them in the agent.
  alignas(cmsghdr) std::array<char, CMSG_SPACE(sizeof(ucred))> control{};
  msghdr msg{};
  msg.msg_iov = &io;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ReceivedChunk out;
  out.size = ::recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
  if (out.size <= 0) return out;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS &&
        c->cmsg_len >= CMSG_LEN(sizeof(ucred))) {
      ucred cred{};
      std::memcpy(&cred, CMSG_DATA(c), sizeof(cred));
      out.sender = cred.pid;
    }
  }
  return out;
}

Result<ino_t> unix_peer_inode(int socket_fd) {
  struct stat st {};
  if (::fstat(socket_fd, &st) != 0) {
    return fail(ErrorCode::kIo, "socket diag: fstat: " + errno_text());
  }
  const UniqueFd nl(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (nl.get() < 0) return fail(ErrorCode::kIo, "socket diag: netlink socket: " + errno_text());
  struct Request {
    nlmsghdr header;
    unix_diag_req body;
  } request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.body.sdiag_family = AF_UNIX;
  request.body.udiag_states = ~0U;
  request.body.udiag_ino = static_cast<std::uint32_t>(st.st_ino);
  request.body.udiag_show = UDIAG_SHOW_PEER;
  request.body.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(nl.get(), &request, sizeof(request), 0,
               reinterpret_cast<const sockaddr*>(&kernel),  // NOLINT: the sockets API
               sizeof(kernel)) != static_cast<ssize_t>(sizeof(request))) {
    return fail(ErrorCode::kIo, "socket diag: send: " + errno_text());
  }
  std::array<std::uint8_t, 8192> reply{};
  const ssize_t n = ::recv(nl.get(), reply.data(), reply.size(), 0);
  if (n < 0) return fail(ErrorCode::kIo, "socket diag: receive: " + errno_text());
  // Parsed by hand, every length checked: the NLMSG_* macros are C casts.
  const auto size = static_cast<std::size_t>(n);
  constexpr std::size_t kHeader = (sizeof(nlmsghdr) + 3U) & ~3U;
  nlmsghdr header{};
  if (size < sizeof(header)) return fail(ErrorCode::kMalformed, "socket diag: short reply");
  std::memcpy(&header, reply.data(), sizeof(header));
  if (header.nlmsg_len > size || header.nlmsg_len < kHeader) {
    return fail(ErrorCode::kMalformed, "socket diag: bad reply length");
  }
  if (header.nlmsg_type == NLMSG_ERROR) {
    nlmsgerr err{};
    if (header.nlmsg_len >= kHeader + sizeof(err))
      std::memcpy(&err, reply.data() + kHeader, sizeof(err));
    return fail(ErrorCode::kNotFound, "socket diag: no such socket (inode " +
                                          std::to_string(st.st_ino) +
                                          "): " + std::strerror(-err.error));
  }
  if (header.nlmsg_type != SOCK_DIAG_BY_FAMILY) {
    return fail(ErrorCode::kMalformed, "socket diag: unexpected reply type");
  }
  std::size_t at = kHeader + ((sizeof(unix_diag_msg) + 3U) & ~3U);
  while (at + sizeof(rtattr) <= header.nlmsg_len) {
    rtattr attr{};
    std::memcpy(&attr, reply.data() + at, sizeof(attr));
    if (attr.rta_len < sizeof(attr) || at + attr.rta_len > header.nlmsg_len) break;
    if (attr.rta_type == UNIX_DIAG_PEER && attr.rta_len >= sizeof(attr) + sizeof(std::uint32_t)) {
      std::uint32_t peer = 0;
      std::memcpy(&peer, reply.data() + at + ((sizeof(attr) + 3U) & ~3U), sizeof(peer));
      if (peer == 0) break;
      return static_cast<ino_t>(peer);
    }
    at += (attr.rta_len + 3U) & ~3U;
  }
  return fail(ErrorCode::kNotFound, "socket diag: the socket has no peer (closed)");
}

}  // namespace warden::os
