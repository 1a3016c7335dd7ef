#pragma once
// Internal to LocalServer: the HTTP/1.1 request as the local API parses it, and the checks made
// on a request before it is routed.

#include <memory_resource>
#include <optional>
#include <string>
#include <string_view>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "agent/api/handlers.h"

namespace warden::agent::api::detail {

inline constexpr std::string_view kSpiffeHeader = "workload.spiffe.io";

/// Header fields and body of one request live in an arena reset per request.
using ArenaAlloc = std::pmr::polymorphic_allocator<char>;
using RequestParser = boost::beast::http::request_parser<
    boost::beast::http::basic_string_body<char, std::char_traits<char>, ArenaAlloc>, ArenaAlloc>;
using Request = RequestParser::value_type;

/// RFC 9112 section 6.1: a request's only transfer coding we accept is a single "chunked".
/// Anything else is refused before the body is used, since a body this server would not frame
/// as the client meant would be read as the next request (request smuggling).
std::optional<HttpReply> framing_refusal(const Request& req);

/// Whether a route hands out a credential (token, proof, unsealed secret) or writes one.
bool gives_credential(std::string_view method, std::string_view target);

/// After a request that carried a secret (PUT /v1/secrets, base64 in the body): wipes the parsed
/// body and the read buffer's bytes, unless a pipelined request is still waiting in it.
void wipe_request(Request& req, boost::beast::flat_buffer& buffer);

}  // namespace warden::agent::api::detail
