#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attest/cel/cel.h"
#include "attest/eventlog/eventlog.h"
#include "attest/ima/ima.h"
#include "attest/pcr_values.h"
#include "attest/policy/policy.h"
#include "attest/protocol/messages.h"
#include "attest/quote/quote.h"
#include "attest/token/jwk.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

/// The verifier pipeline: one call takes a device's attestation evidence (untrusted) and what the
/// verifier knows of the device, and returns only what the quote vouched for. Boot, IMA and
/// container logs are replayed, the quote is checked against the replay and the nonce, the bound
/// key's certification by the AK is checked. As go-attestation's EventLog.Verify: events from a
/// log that did not replay to the quoted PCRs are never returned.
namespace warden::attest::verify {

/// What a check found: refusals decide the verdict, notes are reported on a pass too.
struct Findings {
  std::vector<protocol::Reason> refusals;
  std::vector<protocol::Reason> notes;
  void refuse(ErrorCode c, std::string subject, std::string found,
              std::optional<std::string> expected = std::nullopt) {
    refusals.push_back(
        {std::string(to_string(c)), std::move(subject), std::move(expected), std::move(found)});
  }
  void note(std::string code, std::string subject, std::string expected, std::string found) {
    notes.push_back({std::move(code), std::move(subject), std::move(expected), std::move(found)});
  }
};

/// What the verifier knows of the device before this attestation.
struct DeviceRecord {
  const quote::PublicArea* ak = nullptr;     ///< the enrolled AK (required)
  std::optional<std::uint64_t> reset_count;  ///< of the last accepted quote
  std::uint64_t ima_entries = 0;             ///< IMA entries replayed so far
  ByteSpan ima_state;                        ///< encode_ima_state() after them; empty: none
};

/// A PCR the evidence must quote because the caller's policy reads it.
struct RequiredPcr {
  std::optional<TpmAlg> bank;  ///< nullopt: quoted in any bank (the policy reads its events)
  unsigned index = 0;
  std::string why;  ///< the refusal's "expected": "quoted (<why>)"
};

/// The reference policy's demands on the evidence itself (appraisal stays with the caller).
struct Expectations {
  std::vector<RequiredPcr> pcrs;  ///< each must be quoted, else a pcr_selection_mismatch refusal
};

/// What `policy` reads of the evidence: each PCR it names (in its bank), PCR 7 for a secure_boot
/// rule (the SecureBoot variable, TCG PC Client PFP 10.4.4), PCR 4 for application rules (boot
/// services applications, PFP 3.3.4.5). Events of an unquoted PCR never reach the policy, so a
/// rule on them could only pass by default.
Expectations expectations(const policy::Policy& policy);

/// The result. Every container of events holds only events the verified quote covers; when the
/// quote did not verify they are empty and `refusals` says why.
struct VerifiedEvidence {
  // Move-only: ima_entries may view into ima_ascii, which a copy would not carry along.
  VerifiedEvidence() = default;
  VerifiedEvidence(const VerifiedEvidence&) = delete;
  VerifiedEvidence& operator=(const VerifiedEvidence&) = delete;
  VerifiedEvidence(VerifiedEvidence&&) = default;
  VerifiedEvidence& operator=(VerifiedEvidence&&) = default;
  ~VerifiedEvidence() = default;

  bool signed_by_ak = false;    ///< the quote's signature is the AK's (later checks may fail)
  bool quote_verified = false;  ///< signature, nonce, selection and pcrDigest == replay
  /// The quote header (signed when signed_by_ak): the counters it carries.
  std::optional<quote::ClockInfo> clock;
  bool rebooted = false;  ///< resetCount above the device's: the IMA replay starts over
  /// Replayed values. Vouched for only when quote_verified, and then only those in `quoted`
  /// (the others are what the logs claim).
  PcrValues pcrs;
  PcrSelection quoted;  ///< the quote's selection (empty when it did not verify)
  /// The boot log with only the events of quoted PCRs, and of each event only the digests of
  /// banks its PCR was quoted in (the replay of each matched the quote).
  std::optional<eventlog::EventLog> boot_log;
  std::vector<ima::Entry> ima_ascii;          ///< owns the entries of an ASCII list
  std::vector<ima::EntryView> ima_entries;    ///< the entries the quote covered
  std::optional<ima::ReplayState> ima_state;  ///< after ima_entries
  std::vector<cel::Record> containers;
  /// The key tokens are bound to (session key certified by the binding key, else the binding
  /// key); nullopt with key_refusals when it does not hold up.
  std::optional<token::Jwk> bound_key;
  std::vector<protocol::Reason> refusals;      ///< about the logs, the quote and the PCRs
  std::vector<protocol::Reason> key_refusals;  ///< about the bound key
  std::vector<protocol::Reason> notes;         ///< reported on a pass too
};

/// Runs the pipeline over `req` (untrusted). Everything the device can get wrong is a refusal in
/// the result; an error is returned only for a corrupt `device` record (kInternal class).
Result<VerifiedEvidence> verify(const protocol::AttestRequest& req, const DeviceRecord& device,
                                const Expectations& expected);

/// The boot events as the policy sees them (EV_NO_ACTION dropped).
policy::BootEvidence boot_evidence(const eventlog::EventLog& log);

/// The IMA replay state as the issuer stores it: per bank, u16 TPM_ALG_ID then the 24 PCR values.
Bytes encode_ima_state(const PcrValues& pcrs);
Result<PcrValues> decode_ima_state(ByteSpan data);

}  // namespace warden::attest::verify
