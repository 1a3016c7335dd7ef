#include "attest/token/set.h"

#include "attest/token/json.h"
#include "attest/token/jwt.h"

namespace warden::token {

Result<std::string> mint_set(Signer& signer, const SecurityEvent& set) {
  if (set.event_type.empty()) return fail(ErrorCode::kInvalidArgument, "set: no event type");
  boost::json::object header;
  header["typ"] = kTypSecevent;
  boost::json::object claims;
  claims["iss"] = set.iss;
  claims["iat"] = set.iat;
  claims["jti"] = set.jti;
  claims["aud"] = set.aud;
  claims["sub_id"] = set.sub_id;
  boost::json::object events;
  events[set.event_type] = set.event;
  claims["events"] = std::move(events);
  return sign_jws(signer, std::move(header), claims);
}

boost::json::object opaque_subject(std::string_view id) {
  boost::json::object o;
  o["format"] = "opaque";
  o["id"] = id;
  return o;
}

boost::json::object device_subject(std::string_view device_id,
                                   std::optional<std::string_view> session_id) {
  boost::json::object o;
  o["format"] = "complex";
  o["device"] = opaque_subject(device_id);
  if (session_id) o["session"] = opaque_subject(*session_id);
  return o;
}

}  // namespace warden::token
