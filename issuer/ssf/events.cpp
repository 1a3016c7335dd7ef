#include "issuer/ssf/events.h"

#include <charconv>

#include "attest/token/json.h"
#include "issuer/assign.h"

namespace warden::issuer::ssf {
namespace {

namespace bj = boost::json;

// Reasons come from devices and admins: kept short in every SET.
constexpr std::size_t kMaxReason = 256;

bj::object common(std::int64_t at, Initiator initiator, std::string_view reason) {
  bj::object e;
  e["event_timestamp"] = at;
  e["initiating_entity"] = to_string(initiator);
  bj::object text;
  text["en"] = reason.substr(0, kMaxReason);
  e["reason_admin"] = std::move(text);
  return e;
}

SsfEventDraft draft(std::string_view type, bj::object sub_id, bj::object event) {
  bj::object payload;
  payload["sub_id"] = std::move(sub_id);
  payload["event"] = std::move(event);
  return {std::string(type), json::serialize(payload)};
}

}  // namespace

std::string_view to_string(Initiator initiator) {
  switch (initiator) {
    case Initiator::kPolicy:
      return "policy";
    case Initiator::kAdmin:
      return "admin";
    case Initiator::kSystem:
      return "system";
  }
  return "system";
}

const std::vector<std::string>& events_supported() {
  static const std::vector<std::string> supported = {
      std::string(token::kEventSessionRevoked), std::string(token::kEventDeviceComplianceChange),
      std::string(token::kEventVerification)};
  return supported;
}

SsfEventDraft session_revoked(const TokenRecord& token, std::int64_t at, Initiator initiator,
                              std::string_view reason) {
  return draft(token::kEventSessionRevoked, token::device_subject(token.device_id, token.jti),
               common(at, initiator, reason));
}

SsfEventDraft device_sessions_revoked(std::string_view device_id, std::int64_t at,
                                      Initiator initiator, std::string_view reason) {
  return draft(token::kEventSessionRevoked, token::device_subject(device_id),
               common(at, initiator, reason));
}

SsfEventDraft compliance_change(std::string_view device_id, bool compliant, std::int64_t at,
                                Initiator initiator, std::string_view reason) {
  bj::object e = common(at, initiator, reason);
  e["previous_status"] = compliant ? "not-compliant" : "compliant";
  e["current_status"] = compliant ? "compliant" : "not-compliant";
  return draft(token::kEventDeviceComplianceChange, token::device_subject(device_id), std::move(e));
}

SsfEventDraft verification(std::string_view stream_id, const std::optional<std::string>& state) {
  bj::object e;
  if (state) e["state"] = *state;
  return draft(token::kEventVerification, token::opaque_subject(stream_id), std::move(e));
}

std::vector<SsfEventDraft> revocation_events(std::string_view device_id,
                                             const std::vector<TokenRecord>& revoked,
                                             bool whole_device, std::int64_t at,
                                             Initiator initiator, std::string_view reason) {
  std::vector<SsfEventDraft> out;
  out.reserve(revoked.size() + 1);
  for (const TokenRecord& t : revoked) out.push_back(session_revoked(t, at, initiator, reason));
  if (whole_device) out.push_back(device_sessions_revoked(device_id, at, initiator, reason));
  return out;
}

std::string set_jti(std::string_view stream_id, std::int64_t seq) {
  return std::string(stream_id) + "-" + std::to_string(seq);
}

std::optional<std::int64_t> seq_of_jti(std::string_view stream_id, std::string_view jti) {
  if (jti.size() <= stream_id.size() + 1 || !jti.starts_with(stream_id) ||
      jti[stream_id.size()] != '-') {
    return std::nullopt;
  }
  const std::string_view digits = jti.substr(stream_id.size() + 1);
  std::int64_t seq = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
  if (ec != std::errc() || ptr != digits.data() + digits.size() || seq <= 0) return std::nullopt;
  return seq;
}

Result<token::SecurityEvent> to_set(const SsfDelivery& d, std::string_view iss, std::int64_t now) {
  WARDEN_ASSIGN(payload, json::parse_object(d.event.payload_json, {1 << 20, 16}));
  const bj::object* sub_id = json::get_object(payload, "sub_id");
  const bj::object* event = json::get_object(payload, "event");
  if (sub_id == nullptr || event == nullptr) {
    return fail(ErrorCode::kMalformed, "ssf: stored event " + std::to_string(d.event.seq) +
                                           " has no sub_id or event object");
  }
  token::SecurityEvent set;
  set.iss = std::string(iss);
  set.iat = now;
  set.jti = set_jti(d.stream.id, d.event.seq);
  set.aud = d.stream.aud;
  set.sub_id = *sub_id;
  set.event_type = d.event.type;
  set.event = *event;
  return set;
}

}  // namespace warden::issuer::ssf
