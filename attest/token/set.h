#pragma once

// Security Event Tokens (RFC 8417) as the OpenID Shared Signals Framework 1.0 sends them:
// header typ "secevent+jwt", claims iss, iat, jti, aud, sub_id (SSF subject identifiers) and
// one event under "events". Pure: the caller supplies the time and the signer.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <boost/json/object.hpp>

#include "attest/token/signer.h"
#include "platform/base/error.h"

namespace warden::token {

inline constexpr std::string_view kTypSecevent = "secevent+jwt";
/// RFC 8417 section 2.3: the media type of a SET.
inline constexpr std::string_view kSeceventMediaType = "application/secevent+jwt";

// Event types (CAEP 1.0, SSF 1.0).
inline constexpr std::string_view kEventSessionRevoked =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
inline constexpr std::string_view kEventDeviceComplianceChange =
    "https://schemas.openid.net/secevent/caep/event-type/device-compliance-change";
inline constexpr std::string_view kEventVerification =
    "https://schemas.openid.net/secevent/ssf/event-type/verification";

struct SecurityEvent {
  std::string iss;
  std::int64_t iat = 0;
  std::string jti;
  std::string aud;
  boost::json::object sub_id;  ///< an SSF subject identifier
  std::string event_type;
  boost::json::object event;  ///< the event's members
};

/// Signs the SET (alg and kid from the signer).
Result<std::string> mint_set(Signer& signer, const SecurityEvent& set);

/// {"format": "opaque", "id": id}
boost::json::object opaque_subject(std::string_view id);
/// {"format": "complex", "device": opaque(device_id)[, "session": opaque(session_id)]}
boost::json::object device_subject(std::string_view device_id,
                                   std::optional<std::string_view> session_id = std::nullopt);

}  // namespace warden::token
