#include "issuer/http/server.h"

#include <atomic>
#include <iterator>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>

#include "attest/protocol/limits.h"
#include "issuer/http/admin_socket.h"
#include "issuer/http/connection.h"
#include "issuer/http/router.h"
#include "issuer/http/tls_context.h"
#include "platform/base/bytes.h"
#include "platform/base/openssl.h"

namespace warden::issuer::http {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;
using boost::system::error_code;
using Clock = std::chrono::steady_clock;
using detail::ByteBody;
using detail::Connection;
constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::chrono::milliseconds kLinger{1000};
constexpr std::size_t kLingerBytes = 4 * 1024 * 1024;
constexpr std::size_t kReadBufferBytes = 16 * 1024;

std::string subject_cn(X509* cert) {
  char buf[256] = {};
  const int n =
      X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, sizeof(buf));
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("client-cert");
}

class BeastServer final : public HttpsServer {
 public:
  BeastServer(const IssuerConfig& config, IssuerService& service, asio::ssl::context ssl)
      : limits_(config.limits),
        threads_wanted_(config.listen.threads),
        admin_ca_(!config.tls.admin_client_ca.empty()),
        router_(service, metrics_, router_options(config)),
        ssl_(std::move(ssl)) {}
  ~BeastServer() override { stop(std::chrono::milliseconds(0)); }

  // The admin socket, when configured. Its default path is skipped (with a warning) where its
  // directory does not exist: that directory is made by the systemd unit (RuntimeDirectory=).
  Status open_admin_socket(const IssuerConfig& config) {
    const std::string& path = config.admin.socket;
    if (path.empty()) return ok();
    auto socket =
        AdminSocket::create(io_, path, config.admin.socket_group, limits_, router_, metrics_);
    if (!socket && socket.error().code == ErrorCode::kNotFound &&
        path == IssuerConfig::kDefaultAdminSocket) {
      spdlog::warn("{}; no admin socket (set admin.socket, or admin.socket = \"\" to silence this)",
                   socket.error().message);
      return ok();
    }
    if (!socket) return fail(std::move(socket).error());
    admin_socket_ = std::move(*socket);
    return ok();
  }

  static RouterOptions router_options(const IssuerConfig& config) {
    RouterOptions o;
    o.admin_requires_client_cert = !config.tls.admin_client_ca.empty();
    o.allow_unauthenticated_loopback = config.admin.allow_unauthenticated_loopback;
    o.admin_socket = config.admin.socket;
    o.refusal_burst = static_cast<double>(config.limits.refusal_burst);
    o.refusal_per_second = static_cast<double>(config.limits.refusal_per_minute) / 60.0;
    o.metrics_allow_remote = config.metrics.allow_remote;
    return o;
  }

  Status bind(const std::string& address, std::uint16_t port) {
    error_code ec;
    const auto addr = asio::ip::make_address(address, ec);
    if (ec) {
      return fail(ErrorCode::kInvalidArgument,
                  "listen.address: expected an IP address, found '" + address + "'");
    }
    const tcp::endpoint endpoint(addr, port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return fail(ErrorCode::kIo, "https server: listen on " + address + ":" +
                                      std::to_string(port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    return ok();
  }

  [[nodiscard]] std::uint16_t port() const override { return port_; }
  Metrics& metrics() override { return metrics_; }

  void start() override {
    std::size_t n = threads_wanted_ ? threads_wanted_ : std::thread::hardware_concurrency();
    if (n == 0) n = 1;
    asio::co_spawn(acceptor_.get_executor(), accept_loop(),
                   [](std::exception_ptr e) { log_exception("accept", e); });
    if (admin_socket_) admin_socket_->start();
    for (std::size_t i = 0; i < n; ++i) threads_.emplace_back([this] { io_.run(); });
    spdlog::info("https: listening on port {} with {} threads", port_, n);
  }

  void stop(std::chrono::milliseconds grace) override {
    if (stopping_.exchange(true)) return;
    asio::post(acceptor_.get_executor(), [this] {
      error_code ignored;
      acceptor_.close(ignored);
    });
    // Idle keep-alive connections close now; busy ones finish their request first.
    for_each_connection([](Connection& c) {
      if (c.idle) {
        error_code ignored;
        c.socket().cancel(ignored);
      }
    });
    const auto deadline = Clock::now() + grace;
    while (live_.load() > 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for_each_connection([](Connection& c) {
      error_code ignored;
      c.socket().close(ignored);
    });
    const auto hard = Clock::now() + std::chrono::milliseconds(2000);
    while (live_.load() > 0 && Clock::now() < hard) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // A request waiting for its token's commit is answered through io_ by the store's thread:
    // io_ must outlive that callback, which always comes (the store completes every record).
    while (deferred_.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (admin_socket_) admin_socket_->stop(std::chrono::milliseconds(2000));
    io_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  static void log_exception(std::string_view what, const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      spdlog::warn("https {}: {}", what, x.what());
    }
  }

  template <class F>
  void for_each_connection(F f) {
    std::lock_guard lock(connections_mutex_);
    for (auto& [ptr, weak] : connections_) {
      if (auto c = weak.lock()) {
        asio::post(c->timer.get_executor(), [c, f] { f(*c); });
      }
    }
  }

  asio::awaitable<void> accept_loop() {
    while (!stopping_) {
      auto strand = asio::make_strand(io_);
      auto [ec, socket] = co_await acceptor_.async_accept(strand, kNoThrow);
      if (ec) {
        if (stopping_ || ec == asio::error::operation_aborted) co_return;
        spdlog::warn("https: accept: {}", ec.message());
        asio::steady_timer pause(io_, std::chrono::milliseconds(50));  // EMFILE and friends
        co_await pause.async_wait(kNoThrow);
        continue;
      }
      error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);
      tcp::socket plain(std::move(socket));
      auto executor = plain.get_executor();
      asio::co_spawn(executor, serve(std::move(plain)),
                     [](std::exception_ptr e) { log_exception("connection", e); });
    }
  }

  asio::awaitable<void> serve(tcp::socket socket) {
    error_code ec;
    const auto remote = socket.remote_endpoint(ec);
    Peer peer;
    peer.loopback = !ec && remote.address().is_loopback();
    if (!ec) peer.address = remote.address().to_string();
    // One source address may hold only its share of the connections, counted from accept and
    // refused before any TLS work: otherwise idle sockets from one host take every slot.
    if (!take_address_slot(peer.address)) {
      metrics_.connection_refused();
      spdlog::debug("https: {} is at limits.max_connections_per_address = {}", peer.address,
                    limits_.max_connections_per_address);
      error_code ignored;
      socket.close(ignored);
      co_return;
    }
    auto c = std::make_shared<Connection>(std::move(socket), ssl_);
    {
      std::lock_guard lock(connections_mutex_);
      connections_[c.get()] = c;
    }
    ++live_;
    metrics_.connection_opened();
    bool over_capacity = false;
    if (active_.fetch_add(1) >= limits_.max_connections) {
      active_.fetch_sub(1);
      over_capacity = true;
      metrics_.connection_refused();
    }
    co_await session(*c, peer, over_capacity);
    if (!over_capacity) active_.fetch_sub(1);
    c->disarm();
    {
      std::lock_guard lock(connections_mutex_);
      connections_.erase(c.get());
    }
    c.reset();
    release_address_slot(peer.address);
    metrics_.connection_closed();
    const std::size_t left = --live_;
    trim_after_flood(left);
  }

  bool take_address_slot(const std::string& address) {
    std::lock_guard lock(addresses_mutex_);
    std::size_t& n = per_address_[address];
    if (n >= limits_.max_connections_per_address) {
      if (n == 0) per_address_.erase(address);
      return false;
    }
    ++n;
    return true;
  }
  void release_address_slot(const std::string& address) {
    std::lock_guard lock(addresses_mutex_);
    const auto it = per_address_.find(address);
    if (it != per_address_.end() && --it->second == 0) per_address_.erase(it);
  }

  // glibc keeps what a flood of connections freed in its arenas: give it back to the system
  // once the connections are gone, at most once per flood (high water over kTrimAbove).
  void trim_after_flood(std::size_t left) {
    std::size_t high = high_water_.load();
    while (left + 1 > high && !high_water_.compare_exchange_weak(high, left + 1)) {
    }
    if (left > kTrimBelow || high_water_.load() < kTrimAbove) return;
    if (high_water_.exchange(left) < kTrimAbove) return;  // another thread trims
#ifdef __GLIBC__
    malloc_trim(0);
#endif
  }

  // A Transfer-Encoding the server would not read as the client meant: the codings other than
  // chunked are not implemented (501), and anything but one final "chunked" without a
  // Content-Length is ambiguous framing, the stuff of request smuggling (400). Beast accepts
  // some of these (e.g. "gzip" next to a Content-Length, a folded value).
  static std::optional<std::pair<unsigned, std::string>> transfer_encoding_refusal(
      const bhttp::request_parser<ByteBody>::value_type& msg) {
    const auto [first, last] = msg.equal_range(bhttp::field::transfer_encoding);
    if (first == last) return std::nullopt;
    if (std::next(first) != last) {
      return std::pair{400U, std::string("more than one Transfer-Encoding header")};
    }
    if (msg.count(bhttp::field::content_length) != 0) {
      return std::pair{400U, std::string("Transfer-Encoding next to Content-Length")};
    }
    const std::string_view value = first->value();
    bool chunked_seen = false;
    for (const auto coding : bhttp::token_list(value)) {
      if (chunked_seen) return std::pair{400U, std::string("chunked is not the final coding")};
      if (beast::iequals(coding, "chunked")) {
        chunked_seen = true;
        continue;
      }
      return std::pair{501U, "transfer coding '" + std::string(coding) + "' is not implemented"};
    }
    // What remains is one "chunked", unless the value held something token_list skips.
    std::string_view trimmed = value;
    while (!trimmed.empty() && (trimmed.front() == ' ' || trimmed.front() == '\t')) {
      trimmed.remove_prefix(1);
    }
    while (!trimmed.empty() && (trimmed.back() == ' ' || trimmed.back() == '\t')) {
      trimmed.remove_suffix(1);
    }
    if (!chunked_seen || !beast::iequals(trimmed, "chunked")) {
      return std::pair{400U, "Transfer-Encoding expected \"chunked\", found \"" +
                                 std::string(value.substr(0, 64)) + "\""};
    }
    return std::nullopt;
  }

  asio::awaitable<void> session(Connection& c, Peer peer, bool over_capacity) {
    const std::chrono::milliseconds timeout(limits_.read_timeout_ms);
    // One deadline from accept to the end of the handshake, however slowly the bytes come.
    c.arm(std::chrono::milliseconds(limits_.handshake_timeout_ms));
    c.idle = true;  // stop() closes it
    auto [wait_ec] = co_await c.raw.async_wait(tcp::socket::wait_read, kNoThrow);
    c.idle = false;
    if (wait_ec || stopping_) {
      c.disarm();
      error_code ignored;
      c.socket().close(ignored);
      co_return;
    }
    c.start_tls();
    auto [hs_ec] = co_await c.tls->async_handshake(asio::ssl::stream_base::server, kNoThrow);
    c.disarm();
    if (hs_ec) {
      spdlog::debug("https: TLS handshake: {}", hs_ec.message());
      error_code ignored;
      c.socket().close(ignored);
      co_return;
    }
    if (admin_ca_) {
      SSL* ssl = c.tls->native_handle();
      if (X509* cert = SSL_get0_peer_certificate(ssl);
          cert != nullptr && SSL_get_verify_result(ssl) == X509_V_OK) {
        peer.client_cert_verified = true;
        peer.client_subject = subject_cn(cert);
      }
    }

    beast::flat_buffer buffer;
    // Beast sizes each read by the free capacity (at least 512 bytes); one TLS record's worth
    // saves ~30 reads per 16 KB of body.
    buffer.reserve(kReadBufferBytes);
    for (;;) {
      if (stopping_) break;
      bhttp::request_parser<ByteBody> parser;
      parser.header_limit(
          static_cast<std::uint32_t>(std::min<std::size_t>(limits_.max_header_bytes, UINT32_MAX)));
      parser.body_limit(limits_.max_body_bytes);
      c.idle = buffer.size() == 0;
      c.arm(timeout);
      auto [ec, n] = co_await bhttp::async_read_header(*c.tls, buffer, parser, kNoThrow);
      c.idle = false;
      const auto started = Clock::now();
      if (!ec && over_capacity) {
        co_await refuse(c, parser.get().target(), 503, ErrorCode::kUnavailable,
                        "too_many_connections: the server is at limits.max_connections = " +
                            std::to_string(limits_.max_connections) + "; retry later");
        co_return;
      }
      if (!ec) {
        if (auto bad = transfer_encoding_refusal(parser.get())) {
          co_await refuse(c, parser.get().target(), bad->first,
                          bad->first == 501 ? ErrorCode::kUnsupported : ErrorCode::kMalformed,
                          "transfer_encoding: " + bad->second);
          co_return;
        }
      }
      if (!ec && !parser.is_done()) {
        // Only an attest request may be as large as limits.max_body_bytes allows; every other
        // route has a protocol maximum far below it (a Content-Length over it is refused before
        // the body is read; a chunked body stops at it).
        const std::size_t cap = router_.body_cap(parser.get().target(), limits_.max_body_bytes);
        if (const auto length = parser.content_length(); length && *length > cap) {
          co_await refuse(c, parser.get().target(), 413, ErrorCode::kLimitExceeded,
                          "body_too_large: the request body of " + std::to_string(*length) +
                              " bytes exceeds the " + std::to_string(cap) +
                              " bytes allowed on this route (limits.max_body_bytes = " +
                              std::to_string(limits_.max_body_bytes) + ")");
          co_return;
        }
        parser.body_limit(cap);
        if (parser.get()[bhttp::field::expect] == "100-continue") {
          bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
          co_await bhttp::async_write(*c.tls, cont, kNoThrow);
        }
        std::tie(ec, n) = co_await bhttp::async_read(*c.tls, buffer, parser, kNoThrow);
      }
      const bool timed_out = c.timed_out;
      c.disarm();
      if (ec) {
        const auto target = parser.get().target();
        if (ec == bhttp::error::header_limit) {
          co_await refuse(c, target, 431, ErrorCode::kLimitExceeded,
                          "header_too_large: the request header exceeds limits.max_header_bytes "
                          "= " +
                              std::to_string(limits_.max_header_bytes) + " bytes");
        } else if (ec == bhttp::error::body_limit) {
          co_await refuse(c, target, 413, ErrorCode::kLimitExceeded,
                          "body_too_large: the request body exceeds limits.max_body_bytes = " +
                              std::to_string(limits_.max_body_bytes) + " bytes");
        } else if (timed_out) {
          if (parser.got_some() || buffer.size() > 0) {
            co_await refuse(c, target, 408, ErrorCode::kTimeout,
                            "read_timeout: the request was not received within "
                            "limits.read_timeout_ms = " +
                                std::to_string(limits_.read_timeout_ms) + " ms");
          }
        } else if (ec.category() == bhttp::make_error_code(bhttp::error::header_limit).category() ||
                   ec == bhttp::error::bad_target) {
          if (ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
            co_await refuse(c, target, 400, ErrorCode::kMalformed,
                            "the request is not valid HTTP/1.1: " + ec.message());
          }
        }
        break;
      }

      Request request;
      auto msg = parser.release();
      request.method = std::string(msg.method_string());
      request.target = std::string(msg.target());
      request.host = std::string(msg[bhttp::field::host]);
      request.content_type = std::string(msg[bhttp::field::content_type]);
      request.authorization = std::string(msg[bhttp::field::authorization]);
      request.if_none_match = std::string(msg[bhttp::field::if_none_match]);
      request.accept = std::string(msg[bhttp::field::accept]);
      request.body = std::move(msg.body());
      request.peer = peer;
      Response response;
      if (Router::deferred(request)) {
        response = co_await handle_deferred(request);
      } else {
        response = router_.handle(request);
      }
      const bool keep_alive = msg.keep_alive() && !stopping_;
      const bool ok_write = co_await write(c, response, keep_alive, msg.version());
      const auto elapsed =
          std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started);
      metrics_.request(response.route, response.status, elapsed);
      const std::string_view path =
          std::string_view(request.target).substr(0, request.target.find('?'));
      spdlog::debug("https: {} {} {} {}B in, {}B out, {} us", request.method, path, response.status,
                    request.body.size(), response.body.size(), elapsed.count());
      if (!ok_write || !keep_alive) break;
    }
    co_await close(c);
  }

  // The coroutine suspends until the router answers (a token: once its record has committed),
  // leaving the thread to other connections, whose tokens then share that commit.
  asio::awaitable<Response> handle_deferred(const Request& request) {
    return asio::async_initiate<decltype(asio::use_awaitable), void(Response)>(
        [this, &request](auto handler) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          ++deferred_;
          router_.handle_async(request, [this, shared](Response response) mutable {
            // Only the posted handler keeps the coroutine once deferred_ drops: stop() may then
            // destroy io_, and with it that handler.
            auto mine = std::move(shared);
            const auto executor = asio::get_associated_executor(*mine);
            asio::post(executor,
                       [mine = std::move(mine), response = std::move(response)]() mutable {
                         auto resume = std::move(*mine);
                         resume(std::move(response));
                       });
            --deferred_;
          });
        },
        asio::use_awaitable);
  }

  asio::awaitable<bool> write(Connection& c, Response& response, bool keep_alive,
                              unsigned version) {
    bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(response.status),
                                            version == 10 ? 10U : 11U};
    res.set(bhttp::field::server, "warden-issuer");
    if (!response.content_type.empty()) res.set(bhttp::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) res.set(name, value);
    res.body() = std::move(response.body);
    res.keep_alive(keep_alive);
    res.prepare_payload();
    // RFC 9110 section 8.6: a 304 carries no Content-Length of its own (prepare_payload sets 0).
    if (res.result() == bhttp::status::not_modified) res.erase(bhttp::field::content_length);
    c.arm(std::chrono::milliseconds(limits_.read_timeout_ms));
    auto [ec, n] = co_await bhttp::async_write(*c.tls, res, kNoThrow);
    c.disarm();
    co_return !ec;
  }

  // An error the connection cannot recover from: the response, then the connection closes
  // after the client's unread bytes are drained (so that a TCP reset does not eat the response).
  asio::awaitable<void> refuse(Connection& c, std::string_view target, unsigned status,
                               ErrorCode code, std::string reason) {
    spdlog::warn("https: {} {}", status, reason);
    Response response =
        error_response(target.empty() ? "/" : target, status, to_string(code), reason);
    const auto started = Clock::now();
    co_await write(c, response, false, 11);
    metrics_.request("refused", status,
                     std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started));
    error_code ignored;
    c.socket().shutdown(tcp::socket::shutdown_send, ignored);
    c.arm(kLinger);
    std::array<char, 16 * 1024> sink{};
    std::size_t drained = 0;
    while (drained < kLingerBytes) {
      auto [ec, n] = co_await c.socket().async_read_some(asio::buffer(sink), kNoThrow);
      if (ec) break;
      drained += n;
    }
    c.disarm();
    c.socket().close(ignored);
  }

  asio::awaitable<void> close(Connection& c) {
    if (!c.socket().is_open()) co_return;
    if (!c.tls) {
      error_code ignored;
      c.socket().close(ignored);
      co_return;
    }
    c.arm(kLinger);
    co_await c.tls->async_shutdown(kNoThrow);
    c.disarm();
    error_code ignored;
    c.socket().close(ignored);
  }

  IssuerConfig::Limits limits_;
  std::size_t threads_wanted_;
  bool admin_ca_;
  Metrics metrics_;
  Router router_;
  asio::io_context io_;
  asio::ssl::context ssl_;
  tcp::acceptor acceptor_{asio::make_strand(io_)};  // its strand serialises accept and close
  std::uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::size_t> active_{0};    // connections counted against max_connections
  std::atomic<std::size_t> live_{0};      // every open connection, refused ones too
  std::atomic<std::size_t> deferred_{0};  // requests whose answer the service has yet to give
  /// Above this many open connections, a fall back to kTrimBelow returns freed memory.
  static constexpr std::size_t kTrimAbove = 256;
  static constexpr std::size_t kTrimBelow = 16;
  std::atomic<std::size_t> high_water_{0};  // most open connections since the last trim
  std::mutex addresses_mutex_;              // guards per_address_
  std::unordered_map<std::string, std::size_t> per_address_;
  std::mutex connections_mutex_;  // guards connections_
  std::unordered_map<Connection*, std::weak_ptr<Connection>> connections_;
  std::unique_ptr<AdminSocket> admin_socket_;  // after io_: destroyed before it
};

}  // namespace

Result<std::unique_ptr<HttpsServer>> HttpsServer::create(const IssuerConfig& config,
                                                         IssuerService& service) {
  auto ssl = make_tls_context(config.tls);
  if (!ssl) return fail(std::move(ssl).error());
  if (config.limits.max_connections == 0 || config.limits.max_header_bytes == 0 ||
      config.limits.read_timeout_ms == 0 || config.limits.handshake_timeout_ms == 0 ||
      config.limits.max_connections_per_address == 0) {
    return fail(ErrorCode::kInvalidArgument,
                "limits: max_connections, max_connections_per_address, max_header_bytes, "
                "read_timeout_ms and handshake_timeout_ms must be > 0");
  }
  if (config.issuer_url.empty()) {
    spdlog::warn(
        "issuer_url is not set: /v1/token proofs are checked against the request's Host header, "
        "which the client chooses; set issuer_url (and issuer_url_aliases) in production");
  }
  auto server = std::make_unique<BeastServer>(config, service, std::move(*ssl));
  WARDEN_TRY_STATUS(server->bind(config.listen.address, config.listen.port));
  WARDEN_TRY_STATUS(server->open_admin_socket(config));
  return std::unique_ptr<HttpsServer>(std::move(server));
}

}  // namespace warden::issuer::http
