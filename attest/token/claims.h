#pragma once

// One claims model for Warden's JWTs and CWTs. JSON names follow RFC 7519/7800/9449/9711 and
// the status list draft; Warden's own claims use text names in both encodings ("warden_*").
// CWT keys: iss 1, sub 2, aud 3, exp 4, nbf 5, iat 6, cti 7, cnf 8, scope 9, eat_nonce 10,
// ueid 256, eat_profile 265, measres 274, status 65535.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <boost/json/object.hpp>

#include "attest/token/jwk.h"
#include "platform/base/bytes.h"
#include "platform/base/cbor.h"
#include "platform/base/error.h"

namespace warden::token {

/// Warden's EAT profile (RFC 9711 eat_profile), pinned for device attestation results.
inline constexpr std::string_view kEatProfile = "tag:warden.dev,2026:eat/device-result/v1";

/// typ values per token kind.
inline constexpr std::string_view kTypWorkload = "at+jwt";       ///< workload access token
inline constexpr std::string_view kTypDeviceResult = "eat+jwt";  ///< device result (JWT form)
inline constexpr std::string_view kTypStatusList = "statuslist+jwt";
inline constexpr std::string_view kTypProof = "dpop+jwt";

struct StatusRef {
  std::uint64_t idx = 0;
  std::string uri;
  bool operator==(const StatusRef&) const = default;
};

/// cnf (RFC 7800 / 8747 / 9449): in JWTs "jkt" (and "jwk" if a key is given and no jkt);
/// in CWTs a COSE_Key (decoding a CWT fills both key and jkt).
struct Confirmation {
  std::optional<std::string> jkt;
  std::optional<Jwk> key;
};

struct AttestationResult {
  bool pass = false;
  std::string policy_version;
  Bytes evidence_hash;
  bool operator==(const AttestationResult&) const = default;
};

struct WorkloadSelectors {
  std::optional<std::uint64_t> uid;
  std::optional<std::string> systemd_unit;
  std::optional<std::string> container_id;
  std::optional<std::string> image_ref;  ///< "unknown" for a container whose image is not known
  std::optional<std::string> image_digest;
  std::optional<std::string> executable_digest;
  bool operator==(const WorkloadSelectors&) const = default;
};

/// One measurement system's results (RFC 9711 measres): result 1 success, 2 fail, 3 not run,
/// 4 absent.
struct MeasurementResults {
  std::string system;
  std::vector<std::pair<std::string, std::int64_t>> results;
  bool operator==(const MeasurementResults&) const = default;
};

struct Claims {
  std::optional<std::string> iss;
  std::optional<std::string> sub;
  std::vector<std::string> aud;
  std::optional<std::int64_t> exp;
  std::optional<std::int64_t> nbf;
  std::optional<std::int64_t> iat;
  std::optional<std::string> jti;  ///< CWT cti (bytes of the string)
  std::optional<std::string> scope;
  std::optional<Confirmation> cnf;
  std::optional<StatusRef> status;
  // Warden
  std::optional<std::string> device_id;
  std::optional<AttestationResult> attestation;
  std::optional<WorkloadSelectors> workload;
  // EAT (RFC 9711)
  std::optional<Bytes> eat_nonce;
  std::optional<Bytes> ueid;
  std::optional<std::string> eat_profile;
  std::vector<MeasurementResults> measres;
};

/// JSON (JWT) form. Byte claims (eat_nonce, ueid, evidence hash) are base64url.
boost::json::object claims_to_json(const Claims& claims);
Result<Claims> claims_from_json(const boost::json::object& obj);
/// CBOR (CWT) form.
Result<cbor::Value> claims_to_cbor(const Claims& claims);
Result<Claims> claims_from_cbor(const cbor::Value& map);

/// Time and audience checks shared by JWT and CWT verification.
struct ClaimChecks {
  std::int64_t now = 0;                 ///< seconds since the epoch, passed in
  std::int64_t leeway = 60;             ///< seconds of clock skew tolerated
  std::optional<std::string> audience;  ///< required audience, if any
  bool require_exp = true;
};
/// kExpired, kNotYetValid, kAudienceMismatch or kMalformed (missing exp when required).
Status check_claims(const Claims& claims, const ClaimChecks& checks);

}  // namespace warden::token
