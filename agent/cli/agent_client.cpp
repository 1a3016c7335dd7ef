#include "agent/cli/agent_client.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "attest/protocol/errors.h"

namespace warden::cli {
namespace asio = boost::asio;
namespace http = boost::beast::http;

Result<ApiResponse> call_agent(const std::filesystem::path& socket, std::string_view method,
                               std::string_view target, std::string_view body,
                               std::chrono::seconds timeout) {
  asio::io_context io;
  asio::local::stream_protocol::socket sock(io);
  boost::system::error_code ec;
  sock.connect(asio::local::stream_protocol::endpoint(socket.string()), ec);
  if (ec == asio::error::access_denied || ec == asio::error::no_permission) {
    return fail(ErrorCode::kPermissionDenied,
                "cannot connect to " + socket.string() + ": permission denied");
  }
  if (ec) {
    return fail(ErrorCode::kUnavailable, "cannot connect to " + socket.string() +
                                             ": is wardend running? (" + ec.message() + ")");
  }
  // A stuck agent must not hang the CLI forever.
  const timeval tv{static_cast<time_t>(timeout.count()), 0};
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(sock.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, "localhost");
  req.set("workload.spiffe.io", "true");
  req.set(http::field::user_agent, "wardenctl");
  req.set(http::field::connection, "close");
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  req.body() = std::string(body);
  req.prepare_payload();
  http::write(sock, req, ec);
  if (ec)
    return fail(ErrorCode::kIo, "local api: send to " + socket.string() + ": " + ec.message());

  boost::beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 20);
  http::read(sock, buffer, parser, ec);
  if (ec == http::error::body_limit) {
    return fail(ErrorCode::kLimitExceeded,
                "local api: response from " + socket.string() + " exceeds 1 MiB");
  }
  if (ec) {
    return fail(ErrorCode::kIo,
                "local api: reading the response from " + socket.string() + ": " + ec.message());
  }
  auto res = parser.release();
  return ApiResponse{res.result_int(), std::move(res.body())};
}

std::string describe_error(const ApiResponse& response) {
  const auto status = std::to_string(response.status);
  if (auto e = protocol::parse_error_json(response.body)) {
    return e->reason + " (" + e->code + ", HTTP " + status + ")";
  }
  return "HTTP " + status + ": " + response.body.substr(0, 512);
}

}  // namespace warden::cli
