#include "issuer/ssf/http_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "issuer/untrusted_text.h"
#include "platform/base/openssl.h"

namespace warden::issuer::ssf {
namespace {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using asio::ip::tcp;
using boost::system::error_code;

constexpr auto kNoThrow = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t kMaxUrlBytes = 2048;
constexpr std::uint32_t kMaxHeaderBytes = 16 * 1024;

tl::unexpected<Error> bad_url(std::string_view url, std::string_view why) {
  return fail(ErrorCode::kInvalidArgument,
              "push endpoint: " + std::string(why) + " in " + quote_untrusted(url, 200));
}

bool host_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.';
}

Result<std::uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end || value == 0 || value > 65535) {
    return fail(ErrorCode::kInvalidArgument,
                "expected a port 1-65535, found '" + std::string(text.substr(0, 16)) + "'");
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

Result<Endpoint> parse_endpoint(std::string_view url) {
  if (url.size() > kMaxUrlBytes) return bad_url(url, "longer than 2048 bytes");
  // Bytes that could end the request line or inject a header never reach Beast.
  if (std::any_of(url.begin(), url.end(),
                  [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; })) {
    return bad_url(url, "a space or control character");
  }
  if (url.find('#') != std::string_view::npos) return bad_url(url, "a fragment");
  Endpoint ep;
  const auto sep = url.find("://");
  if (sep == std::string_view::npos) return bad_url(url, "no scheme://");
  for (char c : url.substr(0, sep)) {
    ep.scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (ep.scheme != "https" && ep.scheme != "http") return bad_url(url, "a scheme not http(s)");
  ep.port = ep.scheme == "https" ? 443 : 80;
  std::string_view rest = url.substr(sep + 3);
  const auto authority_end = std::min(rest.find_first_of("/?"), rest.size());
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority_end < rest.size()) {
    ep.target = rest[authority_end] == '?' ? "/" + std::string(rest.substr(authority_end))
                                           : std::string(rest.substr(authority_end));
  }
  if (authority.find('@') != std::string_view::npos) return bad_url(url, "user information");
  std::string_view host = authority;
  std::optional<std::string_view> port;
  if (authority.starts_with('[')) {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return bad_url(url, "an unclosed '['");
    host = authority.substr(1, close - 1);
    error_code ec;
    (void)asio::ip::make_address_v6(std::string(host), ec);
    if (ec) return bad_url(url, "an invalid IPv6 address");
    const auto after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad_url(url, "junk after ']'");
    if (!after.empty()) port = after.substr(1);
  } else {
    if (const auto colon = authority.find(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
    }
    if (!std::all_of(host.begin(), host.end(), host_char)) {
      return bad_url(url, "a host name with characters other than letters, digits, '-' and '.'");
    }
  }
  if (host.empty()) return bad_url(url, "no host");
  ep.host = std::string(host);
  if (port) {
    auto value = parse_port(*port);
    if (!value) return bad_url(url, value.error().message);
    ep.port = *value;
  }
  return ep;
}

namespace {

bool loopback(const asio::ip::address& addr) {
  if (addr.is_v6() && addr.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6()).is_loopback();
  }
  return addr.is_loopback();
}

}  // namespace

bool is_loopback_address(std::string_view host) {
  error_code ec;
  const auto addr = asio::ip::make_address(std::string(host), ec);
  return !ec && loopback(addr);
}

namespace {

// The sockets of one post, closed to abort whatever operation is pending on them.
struct Attempt {
  Attempt(asio::io_context& io, asio::ssl::context& tls, bool https) : resolver(io), timer(io) {
    if (https) {
      secure.emplace(io, tls);
    } else {
      plain.emplace(io);
    }
  }
  tcp::socket& socket() { return secure ? secure->next_layer() : *plain; }
  // Closing the socket ends a pending operation; `aborted` stops the next one from starting
  // (async_connect would open a closed socket again).
  void abort() {
    aborted = true;
    resolver.cancel();
    error_code ignored;
    socket().close(ignored);
  }

  tcp::resolver resolver;
  asio::steady_timer timer;
  std::optional<tcp::socket> plain;
  std::optional<asio::ssl::stream<tcp::socket>> secure;
  bool aborted = false;
};

std::string host_header(const Endpoint& ep) {
  std::string host = ep.host.find(':') != std::string::npos ? "[" + ep.host + "]" : ep.host;
  if (ep.port != (ep.scheme == "https" ? 443 : 80)) host += ":" + std::to_string(ep.port);
  return host;
}

Error io_error(const Endpoint& ep, std::string_view step, error_code ec) {
  return Error{ErrorCode::kUnavailable,
               "push " + host_header(ep) + ": " + std::string(step) + ": " + ec.message(), 0, 0};
}

template <class Stream>
asio::awaitable<Result<PostResponse>> exchange(Stream& stream, const Endpoint& ep,
                                               const PostRequest& rq, std::size_t max_body) {
  bhttp::request<bhttp::span_body<const char>> req{bhttp::verb::post, ep.target, 11};
  req.set(bhttp::field::host, host_header(ep));
  req.set(bhttp::field::user_agent, "warden-issuer");
  req.set(bhttp::field::content_type, rq.content_type);
  if (!rq.accept.empty()) req.set(bhttp::field::accept, rq.accept);
  if (!rq.authorization.empty()) req.set(bhttp::field::authorization, rq.authorization);
  req.keep_alive(false);
  req.body() = {rq.body.data(), rq.body.size()};
  req.prepare_payload();
  auto [wec, written] = co_await bhttp::async_write(stream, req, kNoThrow);
  if (wec) co_return fail(io_error(ep, "send", wec));

  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(kMaxHeaderBytes);
  parser.body_limit(max_body);
  auto [rec, read] = co_await bhttp::async_read(stream, buffer, parser, kNoThrow);
  const bool truncated = rec == bhttp::error::body_limit && parser.is_header_done();
  if (rec && !truncated) {
    const error_code closed = bhttp::error::end_of_stream;
    if (rec.category() == closed.category() && rec != closed &&
        rec != bhttp::error::partial_message) {
      co_return fail(ErrorCode::kMalformed,
                     "push " + host_header(ep) + ": bad HTTP response: " + rec.message());
    }
    co_return fail(io_error(ep, "read response", rec));
  }
  auto& msg = parser.get();
  PostResponse res;
  res.status = msg.result_int();
  res.content_type = std::string(msg[bhttp::field::content_type]);
  res.body = std::move(msg.body());
  if (res.body.size() > max_body) res.body.resize(max_body);
  res.body_truncated = truncated;
  co_return res;
}

}  // namespace

struct HttpClient::Impl {
  Impl(HttpClientOptions o, asio::ssl::context t) : options(std::move(o)), tls(std::move(t)) {}

  asio::awaitable<Result<PostResponse>> run(Attempt& at, const Endpoint& ep,
                                            const PostRequest& rq) {
    std::vector<tcp::endpoint> addresses;
    error_code ec;
    if (const auto literal = asio::ip::make_address(ep.host, ec); !ec) {
      addresses.emplace_back(literal, ep.port);
    } else {
      // getaddrinfo runs on Asio's resolver thread and cannot be interrupted: a hanging DNS
      // server holds this post for the system resolver's own timeout (resolv.conf).
      auto [rec, results] =
          co_await at.resolver.async_resolve(ep.host, std::to_string(ep.port), kNoThrow);
      if (rec) co_return fail(io_error(ep, "resolve", rec));
      for (const auto& r : results) addresses.push_back(r.endpoint());
    }
    if (at.aborted) co_return fail(ErrorCode::kUnavailable, "push: aborted");
    if (ep.scheme == "http") {
      if (!std::all_of(addresses.begin(), addresses.end(),
                       [](const auto& a) { return loopback(a.address()); })) {
        co_return fail(ErrorCode::kInvalidArgument,
                       "push " + host_header(ep) + ": plain http to a non-loopback address");
      }
    }
    auto [cec, peer] = co_await asio::async_connect(at.socket(), addresses, kNoThrow);
    if (cec || at.aborted) co_return fail(io_error(ep, "connect", cec));
    at.socket().set_option(tcp::no_delay(true), ec);
    if (!at.secure) {
      auto response = co_await exchange(*at.plain, ep, rq, options.max_body);
      co_return response;
    }

    SSL* ssl = at.secure->native_handle();
    if (asio::ip::make_address(ep.host, ec); !ec) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), ep.host.c_str());
    } else {
      // SNI, and the name the certificate must carry (SSL_set_tlsext_host_name is a C-cast
      // macro).
      SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(ep.host.c_str()));
      SSL_set1_host(ssl, ep.host.c_str());
    }
    auto [hec] = co_await at.secure->async_handshake(asio::ssl::stream_base::client, kNoThrow);
    if (hec) {
      if (const long verify = SSL_get_verify_result(ssl); verify != X509_V_OK) {
        co_return fail(ErrorCode::kUntrusted,
                       "push " + host_header(ep) + ": certificate does not verify against " +
                           trust_name() + ": " + X509_verify_cert_error_string(verify));
      }
      co_return fail(io_error(ep, "TLS handshake", hec));
    }
    auto response = co_await exchange(*at.secure, ep, rq, options.max_body);
    co_return response;
  }

  [[nodiscard]] std::string trust_name() const {
    return options.ca_file.empty() ? "the system trust store" : options.ca_file.string();
  }

  HttpClientOptions options;
  asio::ssl::context tls;
  asio::io_context io{1};
  std::atomic<bool> cancelled{false};
  Attempt* current = nullptr;  // set and read on the posting thread only (inside io.run)
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::~HttpClient() = default;

Result<std::unique_ptr<HttpClient>> HttpClient::create(HttpClientOptions options) {
  asio::ssl::context tls(asio::ssl::context::tls_client);
  SSL_CTX* ctx = tls.native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  tls.set_verify_mode(asio::ssl::verify_peer);
  if (options.ca_file.empty()) {
    if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
      return fail(ossl::error("push client: load the system trust store"));
    }
  } else if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
    return fail(ossl::error("push client: load CA file " + options.ca_file.string(),
                            ErrorCode::kInvalidArgument));
  }
  if (options.deadline <= std::chrono::milliseconds::zero() || options.max_body == 0) {
    return fail(ErrorCode::kInvalidArgument, "push client: deadline and max_body must be > 0");
  }
  return std::unique_ptr<HttpClient>(
      new HttpClient(std::make_unique<Impl>(std::move(options), std::move(tls))));
}

Result<PostResponse> HttpClient::post(const Endpoint& endpoint, const PostRequest& request) {
  Impl& s = *impl_;
  if (s.cancelled.load()) return fail(ErrorCode::kUnavailable, "push: cancelled");
  if (endpoint.scheme == "http" && !s.options.allow_http_loopback) {
    return fail(ErrorCode::kInvalidArgument,
                "push " + host_header(endpoint) + ": plain http is not allowed");
  }
  s.io.restart();
  Attempt attempt(s.io, s.tls, endpoint.scheme == "https");
  s.current = &attempt;
  bool timed_out = false;
  attempt.timer.expires_after(s.options.deadline);
  attempt.timer.async_wait([&](error_code ec) {
    if (ec) return;
    timed_out = true;
    attempt.abort();
  });
  Result<PostResponse> result = fail(ErrorCode::kInternal, "push: exchange did not finish");
  asio::co_spawn(s.io, s.run(attempt, endpoint, request),
                 [&](const std::exception_ptr& e, Result<PostResponse> r) {
                   attempt.timer.cancel();
                   if (e) {
                     result = fail(ErrorCode::kInternal, "push: unexpected exception");
                   } else {
                     result = std::move(r);
                   }
                 });
  // A cancel() that raced the check above has its abort queued on io.
  s.io.run();
  s.current = nullptr;
  if (!result && timed_out) {
    return fail(ErrorCode::kTimeout, "push " + host_header(endpoint) + ": no response within " +
                                         std::to_string(s.options.deadline.count()) + " ms");
  }
  if (!result && s.cancelled.load()) return fail(ErrorCode::kUnavailable, "push: cancelled");
  return result;
}

void HttpClient::cancel() {
  Impl& s = *impl_;
  s.cancelled.store(true);
  asio::post(s.io, [&s] {
    if (s.current != nullptr) s.current->abort();
  });
}

}  // namespace warden::issuer::ssf
