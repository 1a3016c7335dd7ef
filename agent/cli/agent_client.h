#pragma once
// wardenctl's side of the local API: one blocking HTTP/1.1 request over a Unix socket (Beast, as
// the server uses). Every request carries `workload.spiffe.io: true`.

#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>

#include "platform/base/error.h"

namespace warden::cli {

struct ApiResponse {
  unsigned status = 0;
  std::string body;  ///< JSON as the agent sent it
};

/// Sends `method target` with `body` (JSON, may be empty) to the agent listening on `socket`.
/// A socket nobody listens on is kUnavailable "cannot connect to PATH: is wardend running?";
/// a socket the caller may not open is kPermissionDenied. Responses over 1 MiB are kLimitExceeded.
Result<ApiResponse> call_agent(const std::filesystem::path& socket, std::string_view method,
                               std::string_view target, std::string_view body = {},
                               std::chrono::seconds timeout = std::chrono::seconds(30));

/// The reason an error response gives: "REASON (ERROR, HTTP STATUS)", or the raw body when it is
/// not the API's {"error","reason"} shape.
std::string describe_error(const ApiResponse& response);

}  // namespace warden::cli
