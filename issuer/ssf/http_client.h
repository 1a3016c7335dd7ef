#pragma once
// One HTTP POST at a time to an SSF receiver's push endpoint (RFC 8935), over TLS 1.2+ (1.3
// preferred) with the peer's certificate checked against the system trust store or a configured
// CA file. Redirects are never followed: a 3xx is returned as it is.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "platform/base/error.h"

namespace warden::issuer::ssf {

/// An absolute http(s) URL, split for one request.
struct Endpoint {
  std::string scheme;  ///< "https" or "http"
  std::string host;    ///< a DNS name or an IP literal (IPv6 without brackets)
  std::uint16_t port = 443;
  std::string target = "/";  ///< path and query
};

/// Parses a receiver-supplied (untrusted) push endpoint URL; kInvalidArgument naming what is
/// wrong. No user information, no fragment, at most 2,048 bytes.
Result<Endpoint> parse_endpoint(std::string_view url);

/// True for 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 (an IP literal; names are not resolved).
bool is_loopback_address(std::string_view host);

struct HttpClientOptions {
  std::filesystem::path ca_file;  ///< PEM trust anchors; empty: the system trust store
  /// Everything of one request: resolve, connect, TLS handshake, write, read.
  std::chrono::milliseconds deadline{10'000};
  std::size_t max_body = 64 * 1024;  ///< response bytes read; the rest is not read
  /// Plain http is allowed only to a host that is a loopback IP literal or resolves to
  /// loopback addresses only.
  bool allow_http_loopback = false;
};

struct PostRequest {
  std::string_view content_type;
  std::string_view accept;
  std::string_view authorization;  ///< sent as the Authorization header unless empty
  std::string_view body;
};

struct PostResponse {
  unsigned status = 0;
  std::string content_type;
  std::string body;             ///< at most max_body bytes
  bool body_truncated = false;  ///< the receiver sent more than max_body
};

/// Not thread-safe except for cancel(): one owner (a push worker) posts at a time.
class HttpClient {
 public:
  /// Loads the trust anchors; kInvalidArgument when ca_file cannot be read.
  static Result<std::unique_ptr<HttpClient>> create(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Sends one POST on a fresh connection and reads the status line, headers and up to
  /// max_body bytes of the body. Errors: kInvalidArgument (plain http not allowed for the host),
  /// kUnavailable (resolve, connect, reset or closed before a response), kUntrusted (certificate
  /// does not verify or does not match the host), kTimeout (deadline), kMalformed (not HTTP/1.x),
  /// kUnavailable "cancelled" after cancel().
  Result<PostResponse> post(const Endpoint& endpoint, const PostRequest& request);

  /// Thread-safe: aborts the post in progress at once and makes every later post fail.
  void cancel();

  struct Impl;

 private:
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::issuer::ssf
