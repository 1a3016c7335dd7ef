#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "attest/eventlog/quirks.h"
#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

/// TCG PC Client Platform Firmware Profile event logs (TPM-NOTES §4): the legacy SHA-1 format and
/// the crypto-agile format ("Spec ID Event03") with any set of banks. Parsing never trusts a length
/// field; replay follows the PFP rules (EV_NO_ACTION never extended). Firmware deviations are the
/// named workarounds of quirks.h, each reported when it applies. The log is untrusted until its
/// replay matches a verified quote (`check_replay_against_quote`).
namespace warden::attest::eventlog {

enum EventType : std::uint32_t {
  kEvPrebootCert = 0x0,
  kEvPostCode = 0x1,
  kEvNoAction = 0x3,
  kEvSeparator = 0x4,
  kEvAction = 0x5,
  kEvEventTag = 0x6,
  kEvSCrtmContents = 0x7,
  kEvSCrtmVersion = 0x8,
  kEvCpuMicrocode = 0x9,
  kEvPlatformConfigFlags = 0xA,
  kEvTableOfDevices = 0xB,
  kEvCompactHash = 0xC,
  kEvIpl = 0xD,
  kEvIplPartitionData = 0xE,
  kEvNonhostCode = 0xF,
  kEvNonhostConfig = 0x10,
  kEvNonhostInfo = 0x11,
  kEvOmitBootDeviceEvents = 0x12,
  kEvEfiVariableDriverConfig = 0x80000001,
  kEvEfiVariableBoot = 0x80000002,
  kEvEfiBootServicesApplication = 0x80000003,
  kEvEfiBootServicesDriver = 0x80000004,
  kEvEfiRuntimeServicesDriver = 0x80000005,
  kEvEfiGptEvent = 0x80000006,
  kEvEfiAction = 0x80000007,
  kEvEfiPlatformFirmwareBlob = 0x80000008,
  kEvEfiHandoffTables = 0x80000009,
  kEvEfiPlatformFirmwareBlob2 = 0x8000000A,
  kEvEfiHandoffTables2 = 0x8000000B,
  kEvEfiVariableBoot2 = 0x8000000C,
  kEvEfiHcrtmEvent = 0x80000010,
  kEvEfiVariableAuthority = 0x800000E0,
};

/// "EV_SEPARATOR", "EV_EFI_VARIABLE_BOOT", ...; "EV_UNKNOWN_0x..." for others.
std::string event_type_name(std::uint32_t type);

struct EventDigest {
  std::uint16_t alg = 0;  ///< TPM_ALG_ID (may be one PcrValues does not know, e.g. SM3)
  Bytes digest;
};

/// One record, unverified: nothing here is trustworthy before the replay matches a quote.
struct Event {
  std::size_t index = 0;   ///< position in the log (0 = the Spec ID / first record)
  std::size_t offset = 0;  ///< byte offset of the record in the log
  std::uint32_t pcr = 0;
  std::uint32_t type = 0;
  std::vector<EventDigest> digests;
  Bytes data;
};

struct AlgorithmSize {
  std::uint16_t alg = 0;
  std::uint16_t digest_size = 0;
};

struct SpecIdEvent {
  std::uint32_t platform_class = 0;
  std::uint8_t spec_version_minor = 0;
  std::uint8_t spec_version_major = 0;
  std::uint8_t spec_errata = 0;
  std::uint8_t uintn_size = 0;
  std::vector<AlgorithmSize> algorithms;
  Bytes vendor_info;
};

struct EventLog {
  bool crypto_agile = false;
  std::optional<SpecIdEvent> spec_id;  ///< set for crypto-agile logs
  std::vector<Event> events;           ///< including the first (Spec ID) record
  /// Why parsing stopped early (best-effort mode), and tolerated oddities (with the offset).
  std::vector<std::string> warnings;
  std::vector<AppliedQuirk> quirks;  ///< parse workarounds that applied
};

struct ParseOptions {
  /// false: any malformed record fails the parse (error names the offset).
  /// true: keep the events before the first malformed record and add a warning.
  bool best_effort = false;
  std::size_t max_events = 100000;
  QuirkSet quirks = QuirkSet::all();
};

Result<EventLog> parse(ByteSpan log, const ParseOptions& options = {});

/// Replays every event into PCR values, one bank per algorithm of the log (SHA-1 for legacy logs;
/// algorithms PcrValues does not know are skipped with a warning).
struct Replay {
  PcrValues pcrs;
  std::vector<std::string> warnings;
  std::vector<AppliedQuirk> quirks;  ///< replay workarounds that applied
};
Result<Replay> replay(const EventLog& log, const QuirkSet& quirks = QuirkSet::all());

/// Events whose digest can be recomputed from their data and does not match (separator, EFI
/// action, EV_ACTION, variable driver config, variable boot, EV_IPL), under every quirk.
struct DigestMismatch {
  std::size_t index = 0;
  std::string reason;
};
std::vector<DigestMismatch> check_digests(const EventLog& log);

/// check_digests with a choice of workarounds, reporting those that applied.
struct DigestCheck {
  std::vector<DigestMismatch> mismatches;
  std::vector<AppliedQuirk> quirks;
};
DigestCheck check_event_digests(const EventLog& log, const QuirkSet& quirks = QuirkSet::all());

/// UEFI_VARIABLE_DATA (GUID, UTF-16LE name, data).
struct UefiVariable {
  std::string guid;  ///< canonical lowercase text form
  std::string name;  ///< UTF-8 (non-ASCII code units replaced by '?')
  Bytes data;
};
Result<UefiVariable> parse_uefi_variable(ByteSpan data);

/// Decoded view of an event's data for display and policies: a short list of name/value pairs.
struct DecodedField {
  std::string name;
  std::string value;
};
std::vector<DecodedField> decode(const Event& event);

/// Best-effort text of an EFI device path ("File(\\EFI\\BOOT\\BOOTX64.EFI)/..."), "" if unparsable.
std::string device_path_to_text(ByteSpan path);

/// Secure Boot state from the log: the data byte of the EV_EFI_VARIABLE_DRIVER_CONFIG "SecureBoot"
/// variable (nullopt if absent).
std::optional<bool> secure_boot_enabled(const EventLog& log);

/// Compares a replay with a quote. `selection`/`pcr_digest` come from a verified quote; `hash` is
/// the quote's signing hash. When they disagree and `reported` PCR values (e.g. from PCR_Read) are
/// given, the error lists every selected PCR (bank:index) whose replayed value differs from them.
/// Fails with kReplayMismatch.
Status check_replay_against_quote(const PcrValues& replayed, const PcrSelection& selection,
                                  ByteSpan pcr_digest, ossl::Hash hash,
                                  const PcrValues* reported = nullptr);

}  // namespace warden::attest::eventlog
