#pragma once
// The HTTPS server of warden-issuer: Boost.Beast over Asio and OpenSSL, a thread pool running one
// io_context, one coroutine per connection on its own strand. Enforces the limits of
// IssuerConfig::limits (431 header, 413 body, 408 read timeout, 503 connection cap; a share of
// connections per client address and a handshake deadline, both before any TLS work; 400/501
// for Transfer-Encoding framing it will not guess at) and serves keep-alive connections until
// stop(), which lets in-flight requests finish.

#include <cstdint>
#include <memory>

#include "issuer/config.h"
#include "issuer/http/metrics.h"
#include "issuer/service.h"
#include "platform/base/error.h"

namespace warden::issuer::http {

class HttpsServer {
 public:
  /// Loads the certificate and key, binds listen.address:listen.port (port 0: any free port).
  static Result<std::unique_ptr<HttpsServer>> create(const IssuerConfig& config,
                                                     IssuerService& service);
  virtual ~HttpsServer() = default;
  /// The bound TCP port.
  [[nodiscard]] virtual std::uint16_t port() const = 0;
  /// Starts accepting on listen.threads threads (0 = one per CPU) and returns.
  virtual void start() = 0;
  /// Stops accepting, closes idle connections, waits up to `grace` for in-flight requests, then
  /// closes the rest and joins the threads. Safe to call from any thread except a pool thread.
  virtual void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000)) = 0;
  [[nodiscard]] virtual Metrics& metrics() = 0;
};

}  // namespace warden::issuer::http
