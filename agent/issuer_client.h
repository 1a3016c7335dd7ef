#pragma once
// The agent's side of the agent <-> issuer protocol (docs/protocol.md): typed calls over CBOR.
// IssuerApi is what the daemon core needs; IssuerClient implements it over HTTPS with the
// issuer's CA pinned. Tests may implement IssuerApi over an in-process issuer.

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "agent/config/agent_config.h"
#include "attest/protocol/messages.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"
#include "platform/net/https_client.h"

namespace warden::agent {

/// The issuer's agent API. Errors: the issuer's error-response mapped back with
/// protocol::to_error() (code as the issuer sent it), kUnavailable when it cannot be reached,
/// kMalformed when a response does not decode. Implementations are thread-safe.
class IssuerApi {
 public:
  virtual ~IssuerApi() = default;
  virtual Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest& request) = 0;
  virtual Result<protocol::ActivateResponse> activate(const protocol::ActivateRequest& request) = 0;
  virtual Result<protocol::ChallengeResponse> challenge(
      const protocol::ChallengeRequest& request) = 0;
  virtual Result<protocol::AttestResponse> attest(const protocol::AttestRequest& request) = 0;
  /// POST /v1/token; the request's proof must name POST and token_url().
  virtual Result<protocol::TokenResponse> token(const protocol::TokenRequest& request) = 0;
  virtual Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest& request) = 0;
  /// GET /v1/status/{list_id}: the signed status list token (JWT text).
  virtual Result<std::string> status_list(std::string_view list_id) = 0;
  /// GET /.well-known/jwks.json: the issuer's token signing keys (JSON text).
  virtual Result<std::string> jwks() = 0;
  /// The absolute URL of POST /v1/token, the htu of the device's proofs.
  [[nodiscard]] virtual std::string token_url() const = 0;
};

/// IssuerApi over net::HttpsClient (one keep-alive connection, serialised by a mutex).
class IssuerClient final : public IssuerApi {
 public:
  /// `issuer_url` and `ca_file` as config issuer.url / issuer.ca_file.
  static Result<std::unique_ptr<IssuerClient>> create(const std::string& issuer_url,
                                                      const std::filesystem::path& ca_file);
  static Result<std::unique_ptr<IssuerClient>> create(std::unique_ptr<net::HttpsClient> http);

  Result<protocol::EnrollResponse> enroll(const protocol::EnrollRequest& request) override;
  Result<protocol::ActivateResponse> activate(const protocol::ActivateRequest& request) override;
  Result<protocol::ChallengeResponse> challenge(const protocol::ChallengeRequest& request) override;
  Result<protocol::AttestResponse> attest(const protocol::AttestRequest& request) override;
  Result<protocol::TokenResponse> token(const protocol::TokenRequest& request) override;
  Result<protocol::RevokeResponse> revoke(const protocol::RevokeRequest& request) override;
  Result<std::string> status_list(std::string_view list_id) override;
  Result<std::string> jwks() override;
  [[nodiscard]] std::string token_url() const override;

 private:
  explicit IssuerClient(std::unique_ptr<net::HttpsClient> http) : http_(std::move(http)) {}
  /// POSTs CBOR; on 200 returns the body, else the decoded error-response.
  Result<Bytes> post(std::string_view target, ByteSpan body);
  Result<std::string> get(const std::string& target, std::string_view accept);

  std::mutex mu_;  // guards http_ (one connection, not thread-safe)
  std::unique_ptr<net::HttpsClient> http_;
};

/// Jittered exponential backoff ("full jitter"): the n-th delay is uniform in
/// [base*2^n / 2, base*2^n], capped at `max`. Not thread-safe.
class Backoff {
 public:
  Backoff(std::chrono::milliseconds base, std::chrono::milliseconds max, Random& random)
      : base_(base), max_(max), random_(random) {}
  /// The delay before the next attempt; each call doubles the window.
  std::chrono::milliseconds next();
  void reset() { attempt_ = 0; }
  [[nodiscard]] unsigned attempts() const { return attempt_; }

 private:
  std::chrono::milliseconds base_;
  std::chrono::milliseconds max_;
  Random& random_;
  unsigned attempt_ = 0;
};

}  // namespace warden::agent
