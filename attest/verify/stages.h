#pragma once

// The pipeline's stages, shared by its source files (not a public header).
#include <optional>

#include "attest/verify/verify.h"

namespace warden::attest::verify::detail {

inline constexpr unsigned kImaPcr = 10;

bool selected(const PcrSelection& s, TpmAlg bank, unsigned index);

/// Copies PCR `index` of every selected bank from `from` into `to` (banks both have).
void take_pcr(PcrValues& to, const PcrValues& from, const PcrSelection& s, unsigned index);

/// Continues the device's IMA replay with this upload into `out`. Errors only for a corrupt
/// stored state; everything the device can get wrong is a refusal.
Status replay_ima(const protocol::AttestRequest& req, const DeviceRecord& device,
                  const PcrSelection& selection, VerifiedEvidence& out, Findings& f);

/// The key tokens will be bound to; nullopt (with refusals) when it does not hold up.
std::optional<token::Jwk> bound_key(const protocol::AttestRequest& req, const quote::PublicArea& ak,
                                    Findings& f);

}  // namespace warden::attest::verify::detail
