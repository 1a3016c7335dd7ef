#include "platform/net/https_client.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <optional>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "platform/base/openssl.h"

namespace warden::net {
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

Result<Url> parse_url(std::string_view text) {
  Url url;
  const auto scheme_end = text.find("://");
  if (scheme_end == std::string_view::npos) {
    return fail(ErrorCode::kInvalidArgument,
                "url: expected scheme://host[:port][/path], found '" + std::string(text) + "'");
  }
  url.scheme = std::string(text.substr(0, scheme_end));
  std::transform(url.scheme.begin(), url.scheme.end(), url.scheme.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (url.scheme != "https" && url.scheme != "http") {
    return fail(ErrorCode::kInvalidArgument,
                "url: expected scheme https or http, found '" + url.scheme + "'");
  }
  url.port = url.scheme == "https" ? 443 : 80;
  std::string_view rest = text.substr(scheme_end + 3);
  const auto path_start = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, path_start);
  if (path_start != std::string_view::npos) {
    url.target = std::string(rest.substr(path_start));
    if (url.target.front() == '?') url.target.insert(0, "/");
  }
  if (authority.find('@') != std::string_view::npos) {
    return fail(ErrorCode::kInvalidArgument,
                "url: user information is not supported in '" + std::string(text) + "'");
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) {
      return fail(ErrorCode::kInvalidArgument,
                  "url: unterminated IPv6 address in '" + std::string(text) + "'");
    }
    url.host = std::string(authority.substr(1, close - 1));
    const auto after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return fail(ErrorCode::kInvalidArgument,
                    "url: expected ':' after IPv6 address in '" + std::string(text) + "'");
      }
      port_text = after.substr(1);
    }
  } else {
    const auto colon = authority.rfind(':');
    url.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (url.host.empty()) {
    return fail(ErrorCode::kInvalidArgument, "url: missing host in '" + std::string(text) + "'");
  }
  if (!port_text.empty() || authority.ends_with(':')) {
    unsigned port = 0;
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || port == 0 ||
        port > 65535) {
      return fail(ErrorCode::kInvalidArgument,
                  "url: expected a port 1-65535, found '" + std::string(port_text) + "'");
    }
    url.port = static_cast<std::uint16_t>(port);
  }
  return url;
}

namespace {

using Stream = beast::ssl_stream<asio::ip::tcp::socket>;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  (void)asio::ip::make_address(host, ec);
  return !ec;
}

class BeastHttpsClient final : public HttpsClient {
 public:
  BeastHttpsClient(Url base, ClientOptions options, asio::ssl::context ssl)
      : base_(std::move(base)), options_(std::move(options)), ssl_(std::move(ssl)) {
    prefix_ = base_.target;
    if (const auto q = prefix_.find('?'); q != std::string::npos) prefix_.resize(q);
    while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
    const bool default_port = base_.port == (base_.scheme == "https" ? 443 : 80);
    host_header_ = base_.host.find(':') != std::string::npos ? "[" + base_.host + "]" : base_.host;
    if (!default_port) host_header_ += ":" + std::to_string(base_.port);
  }
  ~BeastHttpsClient() override { close(); }

  Result<Response> request(std::string_view method, std::string_view target,
                           std::string_view content_type, ByteSpan body,
                           const std::map<std::string, std::string>& headers) override {
    const std::string full_target = prefix_ + std::string(target);
    // The body is sent from the caller's bytes, not copied into the message (an attest upload is
    // ~150 KB).
    http::request<http::span_body<const std::uint8_t>> req;
    req.method_string(method);
    req.target(full_target);
    req.version(11);
    req.set(http::field::host, host_header_);
    req.set(http::field::user_agent, "warden");
    if (!content_type.empty()) req.set(http::field::content_type, content_type);
    for (const auto& [name, value] : headers) req.set(name, value);
    req.body() = {body.data(), body.size()};
    req.keep_alive(true);
    req.prepare_payload();

    const bool reused = stream_.has_value();
    auto result = exchange(req);
    if (!result && reused && result.error().code == ErrorCode::kUnavailable && !response_started_) {
      // The server closed an idle keep-alive connection; one fresh attempt.
      close();
      result = exchange(req);
    }
    if (!result) close();
    return result;
  }

  [[nodiscard]] std::string url(std::string_view target) const override {
    return base_.scheme + "://" + host_header_ + prefix_ + std::string(target);
  }

 private:
  // Runs one asynchronous operation to completion on the private io_context, for at most
  // `timeout`: past it the socket is closed (the operation ends) and the result is a timeout.
  // The deadline is the io_context's own wait (epoll_wait's timeout), not a timer: a timer costs
  // a timerfd_settime syscall per arm and per cancel, several per request.
  template <class Initiate>
  error_code run(std::chrono::milliseconds timeout, Initiate&& initiate) {
    error_code result = asio::error::would_block;
    bool done = false;
    initiate([&result, &done](error_code ec, auto&&...) {
      result = ec;
      done = true;
    });
    io_.restart();
    io_.run_for(timeout);
    if (done) return result;
    if (stream_) {
      error_code ignored;
      beast::get_lowest_layer(*stream_).close(ignored);
    }
    io_.restart();
    io_.run();  // the cancelled operation completes
    return beast::error::timeout;
  }

  Status connect() {
    asio::ip::tcp::resolver resolver(io_);
    asio::ip::tcp::resolver::results_type endpoints;
    error_code ec = run(options_.connect_timeout, [&](auto handler) {
      resolver.async_resolve(base_.host, std::to_string(base_.port),
                             [&endpoints, handler](error_code e, auto results) mutable {
                               endpoints = std::move(results);
                               handler(e);
                             });
    });
    if (ec) {
      return fail(ErrorCode::kUnavailable, "https: resolve " + base_.host + ": " + ec.message());
    }
    stream_.emplace(io_, ssl_);
    SSL* ssl = stream_->native_handle();
    if (is_ip_literal(base_.host)) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), base_.host.c_str());
    } else {
      // SSL_set_tlsext_host_name is a macro with a C cast.
      SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(base_.host.c_str()));
      SSL_set1_host(ssl, base_.host.c_str());
    }
    auto& tcp = beast::get_lowest_layer(*stream_);
    ec = run(options_.connect_timeout,
             [&](auto handler) { asio::async_connect(tcp, endpoints, std::move(handler)); });
    if (ec) {
      stream_.reset();
      return fail(ec == beast::error::timeout ? ErrorCode::kTimeout : ErrorCode::kUnavailable,
                  "https: connect to " + host_header_ + ": " + ec.message());
    }
    // Without this, Nagle and delayed ACKs stall multi-record request bodies by ~40 ms.
    tcp.set_option(asio::ip::tcp::no_delay(true), ec);
    ec = run(options_.connect_timeout, [&](auto handler) {
      stream_->async_handshake(asio::ssl::stream_base::client, std::move(handler));
    });
    if (ec) {
      const long verify = SSL_get_verify_result(ssl);
      stream_.reset();
      if (verify != X509_V_OK) {
        return fail(ErrorCode::kUntrusted,
                    "https: certificate of " + host_header_ + " does not verify against " +
                        options_.ca_file.string() + ": " + X509_verify_cert_error_string(verify));
      }
      return fail(ErrorCode::kUnavailable,
                  "https: TLS handshake with " + host_header_ + ": " + ec.message());
    }
    return ok();
  }

  Result<Response> exchange(http::request<http::span_body<const std::uint8_t>>& req) {
    response_started_ = false;
    if (!stream_) WARDEN_TRY_STATUS(connect());
    error_code ec = run(options_.io_timeout, [&](auto handler) {
      http::async_write(*stream_, req, std::move(handler));
    });
    if (ec) return io_failure("send", ec);

    http::response_parser<http::vector_body<std::uint8_t>> parser;
    parser.body_limit(options_.max_response_bytes);
    parser.header_limit(64 * 1024);
    buffer_.clear();
    ec = run(options_.io_timeout, [&](auto handler) {
      http::async_read_header(*stream_, buffer_, parser, std::move(handler));
    });
    if (ec) return io_failure("read response", ec);
    response_started_ = true;
    if (!parser.is_done()) {
      ec = run(options_.io_timeout, [&](auto handler) {
        http::async_read(*stream_, buffer_, parser, std::move(handler));
      });
      if (ec) return io_failure("read response", ec);
    }
    auto msg = parser.release();
    Response response;
    response.status = msg.result_int();
    for (const auto& field : msg) {
      response.headers[lower(field.name_string())] = std::string(field.value());
    }
    if (auto it = response.headers.find("content-type"); it != response.headers.end()) {
      response.content_type = it->second;
    }
    response.body = std::move(msg.body());
    if (!msg.keep_alive()) close();
    return response;
  }

  tl::unexpected<Error> io_failure(std::string_view what, error_code ec) {
    ErrorCode code = ErrorCode::kUnavailable;
    if (ec == http::error::body_limit || ec == http::error::header_limit) {
      code = ErrorCode::kLimitExceeded;
    } else if (ec == beast::error::timeout) {
      code = ErrorCode::kTimeout;
    } else if (ec == http::error::end_of_stream || ec == asio::error::eof ||
               ec == asio::ssl::error::stream_truncated) {
      code = ErrorCode::kUnavailable;
    }
    std::string message =
        "https: " + std::string(what) + " (" + host_header_ + "): " + ec.message();
    if (code == ErrorCode::kLimitExceeded) {
      message += " (limit " + std::to_string(options_.max_response_bytes) + " bytes)";
    }
    return fail(code, std::move(message));
  }

  void close() {
    if (!stream_) return;
    error_code ec;
    beast::get_lowest_layer(*stream_).shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    beast::get_lowest_layer(*stream_).close(ec);
    stream_.reset();
  }

  Url base_;
  ClientOptions options_;
  std::string prefix_;
  std::string host_header_;
  asio::io_context io_{1};
  asio::ssl::context ssl_;
  std::optional<Stream> stream_;
  beast::flat_buffer buffer_;
  bool response_started_ = false;
};

}  // namespace

Result<std::unique_ptr<HttpsClient>> HttpsClient::create(std::string_view base_url,
                                                         ClientOptions options) {
  auto url = parse_url(base_url);
  if (!url) return fail(std::move(url).error());
  if (url->scheme != "https") {
    return fail(ErrorCode::kInvalidArgument,
                "https client: expected an https:// URL, found '" + std::string(base_url) + "'");
  }
  if (options.ca_file.empty()) {
    return fail(ErrorCode::kInvalidArgument,
                "https client: a CA file is required for " + std::string(base_url));
  }
  if (options.client_cert_file.has_value() != options.client_key_file.has_value()) {
    return fail(ErrorCode::kInvalidArgument,
                "https client: client certificate and key must be given together");
  }
  asio::ssl::context ssl(asio::ssl::context::tls_client);
  SSL_CTX* ctx = ssl.native_handle();
  SSL_CTX_set_min_proto_version(ctx, options.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  ssl.set_verify_mode(asio::ssl::verify_peer);
  if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1) {
    return fail(ossl::error("https client: load CA file " + options.ca_file.string(),
                            ErrorCode::kInvalidArgument));
  }
  if (options.client_cert_file) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.client_cert_file->c_str()) != 1) {
      return fail(
          ossl::error("https client: load client certificate " + options.client_cert_file->string(),
                      ErrorCode::kInvalidArgument));
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, options.client_key_file->c_str(), SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
      return fail(ossl::error("https client: load client key " + options.client_key_file->string(),
                              ErrorCode::kInvalidArgument));
    }
  }
  return std::unique_ptr<HttpsClient>(
      std::make_unique<BeastHttpsClient>(std::move(*url), std::move(options), std::move(ssl)));
}

}  // namespace warden::net
