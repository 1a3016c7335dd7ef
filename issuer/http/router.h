#pragma once
// Maps HTTP requests to IssuerService calls, free of sockets so that it can be tested and
// benchmarked alone. Agent routes speak CBOR (errors as protocol::ErrorResponse), admin routes
// JSON ({"error": code, "reason": ...}), public routes JSON, JWT or text.

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "issuer/http/metrics.h"
#include "issuer/service.h"
#include "platform/base/bytes.h"

namespace warden::issuer::http {

/// What the transport knows about the caller.
struct Peer {
  bool loopback = false;
  bool client_cert_verified = false;  ///< a client certificate chained to tls.admin_client_ca
  std::string client_subject;         ///< its subject CN, the actor of admin audit records
};

struct Request {
  std::string method;
  std::string target;  ///< path and query as received
  std::string host;    ///< Host header
  std::string content_type;
  Bytes body;
  Peer peer;
};

struct Response {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> headers;
  std::string route = "unmatched";  ///< route pattern, the metrics label
};

/// The body format of errors for a path: CBOR under /v1/, JSON elsewhere.
enum class ErrorFormat { kCbor, kJson };
ErrorFormat error_format(std::string_view target);
/// An error response in the format of `target`: status, stable code, reason.
Response error_response(std::string_view target, unsigned status, std::string_view code,
                        std::string_view reason);
/// HTTP status of a service error (issuer/service.h, docs/protocol.md).
unsigned status_of(ErrorCode code);

struct RouterOptions {
  /// tls.admin_client_ca is set: admin routes need a verified client certificate. Otherwise
  /// they are served to loopback peers only.
  bool admin_requires_client_cert = false;
};

class Router {
 public:
  Router(IssuerService& service, Metrics& metrics, RouterOptions options)
      : service_(service), metrics_(metrics), options_(options) {}
  Response handle(const Request& request);
  /// Requests that handle_async answers without holding the caller's thread while the service
  /// waits (POST /v1/token: the token's record commits in a later group commit).
  static bool deferred(const Request& request);
  /// handle() for a deferred request: `done` receives the response, possibly on another thread
  /// and possibly inside this call.
  void handle_async(const Request& request, std::function<void(Response)> done);

 private:
  Response agent(const Request& request, std::string_view path);
  Response admin(const Request& request, std::string_view path, std::string_view query);
  Response token_reply(std::string_view target, const Result<protocol::TokenResponse>& result);

  IssuerService& service_;
  Metrics& metrics_;
  RouterOptions options_;
};

}  // namespace warden::issuer::http
