#pragma once
// RFC 8414 authorization-server metadata of warden-issuer. Warden is an issuer of attested,
// DPoP-bound workload tokens, not a general OAuth authorization server: its /v1/token is a
// CBOR agent API (a device token plus a proof, docs/protocol.md), no OAuth grant. So the
// document names what a relying party uses (issuer, jwks_uri, introspection_endpoint) and
// leaves out token_endpoint, authorization_endpoint and response_types_supported rather than
// advertise grants that do not exist (RFC 8414 erratum 7793 for response_types_supported).

#include <string>
#include <string_view>

#include "platform/base/error.h"

namespace warden::issuer::oauth {

inline constexpr std::string_view kMetadataPath = "/.well-known/oauth-authorization-server";
inline constexpr std::string_view kIntrospectionPath = "/oauth/introspect";

/// The metadata JSON for `issuer_url` (the iss of the issuer's tokens). kUnavailable when it is
/// empty (tokens then say iss "warden-issuer", which is no URL to build the endpoints from) or
/// not an https URL without query or fragment. grant_types_supported is left out too: no
/// endpoint takes an OAuth grant, and an empty array is not allowed (RFC 8414 3.2).
Result<std::string> authorization_server_metadata(std::string_view issuer_url);

}  // namespace warden::issuer::oauth
