#pragma once
// Shared Signals receivers: registered by the operator (admin API), each holding a bearer token
// (RFC 6750) that the store keeps only as its SHA-256.

#include <string>
#include <string_view>

#include "issuer/store/store.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"

namespace warden::issuer::ssf {

/// The receiver named by `authorization` ("Bearer <token>", RFC 6750): kUntrusted (401) when
/// the header is missing, not a bearer token, or no receiver holds the token.
Result<std::string> authenticate_receiver(Store& store, std::string_view authorization);

/// 1..64 of [A-Za-z0-9._-] (kInvalidArgument).
Status check_receiver_name(std::string_view name);

/// Registers `name` with a fresh token (32 random bytes, base64url) and returns the token: the
/// only time it is seen. kAlreadyExists.
Result<std::string> create_receiver(Store& store, Random& random, std::string_view name,
                                    std::int64_t now);

/// hex SHA-256 of a bearer token, as stored.
std::string token_hash(std::string_view token);

}  // namespace warden::issuer::ssf
