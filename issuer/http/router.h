#pragma once
// Maps HTTP requests to IssuerService calls, free of sockets so that it can be tested and
// benchmarked alone. Agent routes speak CBOR (errors as protocol::ErrorResponse), admin routes
// JSON ({"error": code, "reason": ...}), public routes JSON, JWT or text.

#include <functional>
#include <map>
#include <memory>
#include <optional>
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
  std::string address;                ///< the client's IP address ("" on the admin socket)
  /// The caller on the admin Unix socket (SO_PEERCRED): the socket's permissions admitted it.
  std::optional<std::uint32_t> socket_uid;
};

struct Request {
  std::string method;
  std::string target;  ///< path and query as received
  std::string host;    ///< Host header
  std::string content_type;
  std::string authorization;  ///< Authorization header (SSF receivers, introspection callers)
  std::string if_none_match;  ///< If-None-Match header (conditional GET of status lists)
  std::string accept;         ///< Accept header
  Bytes body;
  Peer peer;
};

struct Response {
  unsigned status = 200;
  std::string content_type;
  std::string body;
  std::map<std::string, std::string> headers;
  std::string route = "unmatched";  ///< route pattern, the metrics label
  /// Answered, but a refusal all the same (an attestation with verdict fail): charged to the
  /// client address like a 4xx.
  bool refused_verdict = false;
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
  /// Who is an admin (docs/issuer-admin-api.md "Access"): a TCP client with a certificate that
  /// verified against tls.admin_client_ca (when set), any caller on the admin socket, and, only
  /// with admin.allow_unauthenticated_loopback, any loopback TCP client.
  bool admin_requires_client_cert = false;
  bool allow_unauthenticated_loopback = false;
  std::string admin_socket;  ///< its path, for the 403 reason ("" = none)
  /// Refused agent requests per client address (limits.refusal_burst, refusal_per_minute);
  /// over it, agent routes answer 429 without reaching the service.
  double refusal_burst = 20;
  double refusal_per_second = 0.2;
  /// metrics.allow_remote: GET /metrics for any caller, not only loopback and admin clients.
  bool metrics_allow_remote = false;
};

/// The issuer's HTTP API: one RouteTable that the capability modules fill (issuer/http/routes.h).
class Router {
 public:
  Router(IssuerService& service, Metrics& metrics, RouterOptions options);
  Response handle(const Request& request);
  /// Requests that handle_async answers without holding the caller's thread while the service
  /// waits (POST /v1/token: the token's record commits in a later group commit).
  static bool deferred(const Request& request);
  /// handle() for a deferred request: `done` receives the response, possibly on another thread
  /// and possibly inside this call.
  void handle_async(const Request& request, std::function<void(Response)> done);
  /// Body bytes a request for `target` may send (limits.max_body_bytes caps them all).
  [[nodiscard]] std::size_t body_cap(std::string_view target, std::size_t max_body_bytes) const;
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

 private:
  struct Modules;  // the route table and the modules' state (issuer/http/routes.h)
  RouterOptions options_;
  std::unique_ptr<Modules> modules_;
};

}  // namespace warden::issuer::http
