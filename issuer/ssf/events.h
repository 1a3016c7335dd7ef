#pragma once
// The Shared Signals events the issuer emits (CAEP 1.0, SSF 1.0) as outbox rows: what a
// revocation, a compliance change or a verification request writes to the store, and how a
// stored event becomes the SET sent to one stream.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "attest/token/set.h"
#include "issuer/store/store.h"

namespace warden::issuer::ssf {

/// Who caused an event (CAEP 1.0 initiating_entity).
enum class Initiator { kPolicy, kAdmin, kSystem };
std::string_view to_string(Initiator initiator);

/// The event types a stream can have delivered (verification is always delivered).
const std::vector<std::string>& events_supported();

/// session-revoked of one token: subject {device, session = its jti}.
SsfEventDraft session_revoked(const TokenRecord& token, std::int64_t at, Initiator initiator,
                              std::string_view reason);
/// session-revoked of every session of a device: subject {device}.
SsfEventDraft device_sessions_revoked(std::string_view device_id, std::int64_t at,
                                      Initiator initiator, std::string_view reason);
/// device-compliance-change: compliant <-> not-compliant.
SsfEventDraft compliance_change(std::string_view device_id, bool compliant, std::int64_t at,
                                Initiator initiator, std::string_view reason);
/// The SSF verification event of a stream, echoing `state` when given.
SsfEventDraft verification(std::string_view stream_id, const std::optional<std::string>& state);

/// The events of revoking `revoked` (tokens of one device): one session-revoked each, and,
/// when `whole_device`, one for the device itself.
std::vector<SsfEventDraft> revocation_events(std::string_view device_id,
                                             const std::vector<TokenRecord>& revoked,
                                             bool whole_device, std::int64_t at,
                                             Initiator initiator, std::string_view reason);

/// The jti of the SET of event `seq` on `stream_id`: the same on every re-send.
std::string set_jti(std::string_view stream_id, std::int64_t seq);
/// The seq a jti of `stream_id` names, or nullopt when it is not one of that stream's.
std::optional<std::int64_t> seq_of_jti(std::string_view stream_id, std::string_view jti);

/// The SET of a stored event for its stream (iat = now).
Result<token::SecurityEvent> to_set(const SsfDelivery& delivery, std::string_view iss,
                                    std::int64_t now);

}  // namespace warden::issuer::ssf
