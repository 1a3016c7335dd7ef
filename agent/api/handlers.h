#pragma once
// The local API's routes: request JSON -> WorkloadService -> response JSON. No sockets here, so
// that every shape check is unit-testable.

#include <string>
#include <string_view>

#include "agent/api/workload_service.h"
#include "platform/base/secret.h"
#include "platform/os/workload_identity.h"

namespace warden::agent::api {

struct HttpReply {
  unsigned status = 200;
  std::string body;  ///< JSON
  /// Instead of `body` when the reply carries an unsealed secret: the JSON in locked memory,
  /// wiped once written.
  SecretBytes secret_body{};
};

/// {"error": code, "reason": reason}
HttpReply error_reply(unsigned status, std::string_view code, std::string_view reason);
/// An Error mapped to its HTTP status (see WorkloadService).
HttpReply error_reply(const Error& error);

/// Caller's selectors as the GET /v1/identity body.
std::string identity_json(const os::Selectors& s);

enum class Socket { kWorkload, kAdmin };

/// Routes one request. GET /v1/watch is not handled here (it streams; see LocalServer).
/// `method` and `target` as on the request line; `body` already capped by the server.
HttpReply route(WorkloadService& service, Socket socket, const os::Selectors& caller,
                std::string_view method, std::string_view target, std::string_view body);

/// True for a secret name the API and the store accept: [A-Za-z0-9._-]{1,128}, not starting with
/// '.' (StateStore::check_secret_name).
bool valid_secret_name(std::string_view name);

}  // namespace warden::agent::api
