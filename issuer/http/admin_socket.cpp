#include "issuer/http/admin_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <grp.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

namespace warden::issuer::http {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using local = asio::local::stream_protocol;
using boost::system::error_code;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr mode_t kSocketMode = 0660;
/// The largest admin body: a policy document (the issuer reads policy_file up to 1 MiB).
constexpr std::size_t kMaxAdminBody = 1024 * 1024;

std::string errno_text() { return std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Result<sockaddr_un> socket_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return fail(ErrorCode::kInvalidArgument, "admin.socket: expected a path of 1.." +
                                                 std::to_string(sizeof(addr.sun_path) - 1) +
                                                 " bytes, found " + std::to_string(path.size()));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

int connect_to(const sockaddr_un& addr) {
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return -1;
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr));
}

// A socket file left by a process that is gone is replaced; one that still answers is not ours
// to take, and anything that is not a socket is never removed.
Status clear_stale(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return ok();
    return fail(ErrorCode::kIo, "admin.socket: stat " + path + ": " + errno_text());
  }
  if (!S_ISSOCK(st.st_mode)) {
    return fail(ErrorCode::kAlreadyExists,
                "admin.socket: " + path + " exists and is not a socket; not replacing it");
  }
  if (connect_to(addr) == 0) {
    return fail(ErrorCode::kAlreadyExists,
                "admin.socket: another process serves " + path + " (a second issuer?)");
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail(ErrorCode::kIo, "admin.socket: remove stale " + path + ": " + errno_text());
  }
  return ok();
}

Result<gid_t> group_id(const std::string& group) {
  if (group.empty()) return ::getegid();
  std::vector<char> buf(16384);
  for (;;) {
    struct group entry {};
    struct group* found = nullptr;
    const int rc = ::getgrnam_r(group.c_str(), &entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1U << 20)) {
      buf.resize(buf.size() * 4);
      continue;
    }
    if (rc != 0 || found == nullptr) {
      return fail(ErrorCode::kInvalidArgument,
                  "admin.socket_group: no group named \"" + group + "\"");
    }
    return found->gr_gid;
  }
}

// The listening socket: bound, then given its owner, group and mode, and only then listening,
// so that a connect() before the permissions are final is refused by the kernel.
Result<int> listen_on(const std::string& path, const std::string& group) {
  auto addr_result = socket_address(path);
  if (!addr_result) return fail(std::move(addr_result).error());
  const sockaddr_un addr = *addr_result;
  const auto dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
    return fail(ErrorCode::kNotFound,
                "admin.socket: directory " + dir.string() + " does not exist");
  }
  auto gid = group_id(group);
  if (!gid) return fail(std::move(gid).error());
  WARDEN_TRY_STATUS(clear_stale(path, addr));
  Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return fail(ErrorCode::kIo, "admin.socket: socket: " + errno_text());
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail(ErrorCode::kIo, "admin.socket: bind " + path + ": " + errno_text());
  }
  auto unlink_fail = [&](std::string what) {
    const std::string text = errno_text();
    ::unlink(path.c_str());
    return fail(ErrorCode::kIo, "admin.socket: " + what + " " + path + ": " + text);
  };
  if (::chown(path.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    return unlink_fail("chown to group " + std::to_string(*gid));
  }
  if (::chmod(path.c_str(), kSocketMode) != 0) return unlink_fail("chmod 0660");
  if (::listen(fd.get(), SOMAXCONN) != 0) return unlink_fail("listen on");
  return fd.release();
}

}  // namespace

AdminSocket::AdminSocket(asio::io_context& io, std::string path, const IssuerConfig::Limits& limits,
                         Router& router, Metrics& metrics)
    : io_(io),
      path_(std::move(path)),
      limits_(limits),
      router_(router),
      metrics_(metrics),
      acceptor_(asio::make_strand(io)) {}

AdminSocket::~AdminSocket() { stop(std::chrono::milliseconds(0)); }

Result<std::unique_ptr<AdminSocket>> AdminSocket::create(asio::io_context& io,
                                                         const std::string& path,
                                                         const std::string& group,
                                                         const IssuerConfig::Limits& limits,
                                                         Router& router, Metrics& metrics) {
  auto listening = listen_on(path, group);
  if (!listening) return fail(std::move(listening).error());
  const int fd = *listening;
  std::unique_ptr<AdminSocket> socket(new AdminSocket(io, path, limits, router, metrics));
  error_code ec;
  socket->acceptor_.assign(local(), fd, ec);
  if (ec) {
    ::close(fd);
    ::unlink(path.c_str());
    return fail(ErrorCode::kIo, "admin.socket: " + ec.message());
  }
  return socket;
}

void AdminSocket::start() {
  asio::co_spawn(acceptor_.get_executor(), accept_loop(), [](const std::exception_ptr&) {});
  spdlog::info("admin API on unix socket {} (mode 0660)", path_);
}

void AdminSocket::stop(std::chrono::milliseconds grace) {
  if (stopping_.exchange(true)) return;
  asio::post(acceptor_.get_executor(), [this] {
    error_code ignored;
    acceptor_.close(ignored);
  });
  {
    std::lock_guard lock(mu_);
    for (auto& [ptr, weak] : sockets_) {
      if (auto s = weak.lock()) {
        asio::post(s->get_executor(), [s] { s->socket().close(); });
      }
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (live_.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::unlink(path_.c_str());
}

asio::awaitable<void> AdminSocket::accept_loop() {
  while (!stopping_) {
    auto [ec, peer] = co_await acceptor_.async_accept(asio::make_strand(io_), kNoThrow);
    if (ec) {
      if (stopping_ || ec == asio::error::operation_aborted) co_return;
      spdlog::warn("admin socket: accept: {}", ec.message());
      continue;
    }
    auto socket = std::make_shared<Socket>(std::move(peer));
    asio::co_spawn(socket->get_executor(), serve(socket), [](const std::exception_ptr& e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        spdlog::warn("admin socket connection: {}", x.what());
      }
    });
  }
}

asio::awaitable<void> AdminSocket::serve(std::shared_ptr<Socket> stream) {
  ++live_;
  {
    std::lock_guard lock(mu_);
    sockets_[stream.get()] = stream;
  }
  // The kernel's word on who connected; the socket's mode and group decided that it may.
  ucred cred{};
  socklen_t len = sizeof(cred);
  const bool identified =
      ::getsockopt(stream->socket().native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0;
  beast::flat_buffer buffer;
  const std::chrono::milliseconds timeout(limits_.read_timeout_ms);
  while (identified && !stopping_) {
    bhttp::request_parser<bhttp::vector_body<std::uint8_t>> parser;
    parser.header_limit(
        static_cast<std::uint32_t>(std::min<std::size_t>(limits_.max_header_bytes, UINT32_MAX)));
    parser.body_limit(kMaxAdminBody);
    stream->expires_after(timeout);
    auto [ec, n] = co_await bhttp::async_read(*stream, buffer, parser, kNoThrow);
    if (ec == bhttp::error::body_limit || ec == bhttp::error::header_limit) {
      const bool body = ec == bhttp::error::body_limit;
      bhttp::response<bhttp::string_body> res{
          body ? bhttp::status::payload_too_large : bhttp::status::request_header_fields_too_large,
          11};
      res.set(bhttp::field::content_type, "application/json");
      res.body() = body ? R"({"error":"limit_exceeded","reason":"the body exceeds 1 MiB"})"
                        : R"({"error":"limit_exceeded","reason":"the header exceeds )"
                          R"(limits.max_header_bytes"})";
      res.keep_alive(false);
      res.prepare_payload();
      co_await bhttp::async_write(*stream, res, kNoThrow);
    }
    if (ec) break;  // closed, timed out, or not HTTP
    const auto started = std::chrono::steady_clock::now();
    auto msg = parser.release();
    Request request;
    request.method = std::string(msg.method_string());
    request.target = std::string(msg.target());
    request.host = std::string(msg[bhttp::field::host]);
    request.content_type = std::string(msg[bhttp::field::content_type]);
    request.authorization = std::string(msg[bhttp::field::authorization]);
    request.if_none_match = std::string(msg[bhttp::field::if_none_match]);
    request.accept = std::string(msg[bhttp::field::accept]);
    request.body = std::move(msg.body());
    request.peer.socket_uid = cred.uid;
    const std::string_view path =
        std::string_view(request.target).substr(0, request.target.find('?'));
    Response response;
    if (path.starts_with("/admin/v1/") || path == "/healthz") {
      response = router_.handle(request);
    } else {
      response = error_response(request.target, 404, to_string(ErrorCode::kNotFound),
                                "the admin socket serves /admin/v1/ and /healthz only");
      response.route = "admin_socket_unmatched";
    }
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(response.status),
                                            msg.version() == 10 ? 10U : 11U};
    res.set(bhttp::field::server, "warden-issuer");
    if (!response.content_type.empty()) res.set(bhttp::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res.set(name, value);
    res.body() = std::move(response.body);
    const bool keep_alive = msg.keep_alive() && !stopping_;
    res.keep_alive(keep_alive);
    res.prepare_payload();
    stream->expires_after(timeout);
    auto [wec, written] = co_await bhttp::async_write(*stream, res, kNoThrow);
    metrics_.request(response.route, response.status,
                     std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::steady_clock::now() - started));
    spdlog::debug("admin socket: uid {} {} {} {}", cred.uid, request.method, path, response.status);
    if (wec || !keep_alive) break;
  }
  error_code ignored;
  stream->socket().shutdown(local::socket::shutdown_both, ignored);
  stream->socket().close(ignored);
  {
    std::lock_guard lock(mu_);
    sockets_.erase(stream.get());
  }
  --live_;
}

}  // namespace warden::issuer::http
