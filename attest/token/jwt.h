#pragma once

// JWS compact JWTs (RFC 7515/7519): mint with a Signer, verify against a KeySet.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/json/object.hpp>

#include "attest/token/claims.h"
#include "attest/token/jwk.h"
#include "attest/token/signer.h"

namespace warden::token {

/// A decoded but NOT verified JWS: for inspection only.
struct UnverifiedJws {
  boost::json::object header;
  boost::json::object payload;
  std::string signing_input;  ///< ASCII base64url(header) "." base64url(payload)
  Bytes signature;
};
/// Splits and decodes a compact JWS (strict base64url, JSON objects under limits).
Result<UnverifiedJws> decode_jws(std::string_view compact);

/// Signs `payload` with extra header members (alg and kid are set from the signer; a header
/// "jwk" member is kept as given).
Result<std::string> sign_jws(Signer& signer, boost::json::object header,
                             const boost::json::object& payload);
/// Mints a JWT of the given typ carrying `claims`.
Result<std::string> mint_jwt(Signer& signer, std::string_view typ, const Claims& claims);

struct JwtVerifyOptions {
  ClaimChecks checks;
  std::optional<std::string> typ;  ///< required typ header (case-insensitive), if set
  std::vector<Alg> allowed = {Alg::kEs256, Alg::kEs384, Alg::kEdDsa, Alg::kRs256};
};

struct VerifiedJwt {
  boost::json::object header;
  boost::json::object payload;
  Claims claims;
};

/// Checks the header (alg allowed and asymmetric, no unknown crit, typ), finds the key by kid,
/// verifies the signature, then the claims. Errors: kMalformed, kAlgorithmNotAllowed,
/// kUnknownKey, kBadSignature, kExpired, kNotYetValid, kAudienceMismatch.
Result<VerifiedJwt> verify_jwt(std::string_view compact, const KeySet& keys,
                               const JwtVerifyOptions& options);
/// Signature-only check of a JWS with a given key (header alg checked against `allowed`).
Result<UnverifiedJws> verify_jws_with(std::string_view compact, const Jwk& key,
                                      const std::vector<Alg>& allowed);

/// The header's alg, refusing "none", HS*, and anything not in `allowed`.
Result<Alg> header_alg(const boost::json::object& header, const std::vector<Alg>& allowed);

}  // namespace warden::token
