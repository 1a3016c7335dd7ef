#pragma once
// What the local API asks of the agent. The HTTP layer (local_server, handlers) validates request
// shapes and maps errors to status codes; implementations own tokens, proofs, secrets and posture.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "agent/config/agent_config.h"
#include "platform/base/error.h"
#include "platform/base/secret.h"
#include "platform/os/workload_identity.h"

namespace warden::agent {

/// POST /v1/token {"audience": "...", "scopes": ["..."], "ttl": 300, "format": "jwt"|"cwt"}
struct TokenRequest {
  std::string audience;
  std::vector<std::string> scopes;
  std::optional<std::chrono::seconds> ttl;  ///< absent: config token.ttl_seconds
  std::optional<TokenFormat> format;        ///< absent: config token.format
};
/// -> {"token": "...", "token_type": "DPoP", "jti": "...", "expires_at": UNIX}
struct TokenResponse {
  std::string token;
  std::string token_type = "DPoP";
  std::string jti;
  std::int64_t expires_at = 0;
};

/// POST /v1/proof {"jti": "...", "htm": "GET", "htu": "https://..."} -> {"proof": "..."}
struct ProofRequest {
  std::string jti;
  std::string htm;
  std::string htu;
};
struct ProofResponse {
  std::string proof;
};

/// One allowed reader of a sealed secret; every present field must match the caller.
struct SelectorMatch {
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<std::string> systemd_unit;
  std::optional<std::string> container_id;
  std::optional<std::string> container_runtime;
  std::optional<std::string> exe_path;
  std::optional<std::string> exe_sha256;

  [[nodiscard]] bool matches(const os::Selectors& s) const;
};

/// PUT /v1/secrets/{name} {"value": "<base64>", "allow": [{"uid": 1000, "exe_sha256": "..."}]}
struct SealRequest {
  std::string name;
  SecretBytes value;
  std::vector<SelectorMatch> allow;  ///< at least one
};

/// GET /v1/status -> {"state": "serving", "reason": "...", "since": UNIX, "enrolled": true,
/// "pending_revocation_reports": 0}
struct AgentStatus {
  std::string state;
  std::string reason;
  std::int64_t since = 0;
  bool enrolled = false;
  std::size_t pending_revocation_reports = 0;  ///< queued for the issuer, or being sent
};

/// Implemented by the daemon. Called on the API's io_context thread: implementations must not
/// block for long (a cached token or a session-key proof), or hand work to their own threads.
/// Errors map to HTTP by the one error table (protocol::error_info, docs/protocol.md), with the
/// credential codes 403 (handlers.cpp); the body is {"error": to_string(code), "reason": message}.
class WorkloadService {
 public:
  virtual ~WorkloadService() = default;
  virtual Result<TokenResponse> token(const os::Selectors& caller, const TokenRequest& request) = 0;
  virtual Result<ProofResponse> proof(const os::Selectors& caller, const ProofRequest& request) = 0;
  /// The unsealed secret, only for an allowed caller while posture is good.
  virtual Result<SecretBytes> secret(const os::Selectors& caller, const std::string& name) = 0;
  // Admin socket only.
  virtual Result<AgentStatus> status() = 0;
  virtual Status seal_secret(const os::Selectors& caller, const SealRequest& request) = 0;
  virtual Status revoke(const os::Selectors& caller, const std::string& reason) = 0;
  virtual Result<AgentStatus> reattest(const os::Selectors& caller) = 0;
};

}  // namespace warden::agent
