#pragma once
// A small blocking HTTPS/1.1 client on Boost.Beast and OpenSSL: one keep-alive connection,
// reconnected on demand. TLS 1.3 by default; the server certificate must chain to the pinned CA
// file and match the URL's host. Not thread-safe: one owner per connection (make one per thread).

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::net {

struct Url {
  std::string scheme;  ///< "https" (or "http" only where explicitly allowed)
  std::string host;
  std::uint16_t port = 443;
  std::string target = "/";  ///< path and query
};
/// Parses an absolute http(s) URL; kInvalidArgument naming what is wrong.
Result<Url> parse_url(std::string_view url);

struct ClientOptions {
  std::filesystem::path ca_file;            ///< PEM; required for https
  std::optional<std::filesystem::path> client_cert_file;  ///< PEM, for mutual TLS
  std::optional<std::filesystem::path> client_key_file;
  bool allow_tls12 = false;                 ///< default: TLS 1.3 only
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds io_timeout{10000};
  std::size_t max_response_bytes = 4 * 1024 * 1024;
};

struct Response {
  unsigned status = 0;
  std::string content_type;
  std::map<std::string, std::string> headers;  ///< lower-case names
  Bytes body;
};

class HttpsClient {
 public:
  /// `base_url` is scheme://host[:port][/prefix]; request targets are appended to its prefix.
  static Result<std::unique_ptr<HttpsClient>> create(std::string_view base_url,
                                                     ClientOptions options);
  virtual ~HttpsClient() = default;
  /// Sends one request; kUnavailable when the server cannot be reached or the connection breaks
  /// (after one transparent reconnect of a stale keep-alive connection), kUntrusted when the
  /// certificate does not verify, kLimitExceeded when the response is too large.
  virtual Result<Response> request(std::string_view method, std::string_view target,
                                   std::string_view content_type, ByteSpan body,
                                   const std::map<std::string, std::string>& headers = {}) = 0;
  /// The absolute URL of `target` (used as a DPoP htu).
  [[nodiscard]] virtual std::string url(std::string_view target) const = 0;
};

}  // namespace warden::net
