#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "attest/cel/cel.h"
#include "attest/ima/ima.h"
#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"

/// Reference values (TOML, docs/policy.md) and appraisal of replayed evidence into a Verdict
/// that lists every reason. Pure: parses a string, no file I/O.
namespace warden::attest::policy {

enum class SecureBoot { kAny, kEnabled, kDisabled };

struct PcrRule {
  TpmAlg bank = TpmAlg::kSha256;
  unsigned index = 0;
  bool replay_only = false;     ///< value comes from log replay; no fixed reference
  std::vector<Bytes> expected;  ///< any of these is acceptable
};

struct ImaAllow {
  std::string path;                                    ///< exact path
  std::vector<std::pair<std::string, Bytes>> digests;  ///< (algo, digest) pairs
};

struct Policy {
  std::string version;
  std::vector<PcrRule> pcrs;
  SecureBoot secure_boot = SecureBoot::kAny;
  std::vector<Bytes> allowed_applications;  ///< Authenticode digests; empty = any
  std::vector<Bytes> denied_applications;
  std::vector<Bytes> denied_event_digests;  ///< digests of any other boot event
  std::vector<ImaAllow> ima_allow;          ///< empty = no allowlist
  std::vector<std::string> ima_deny_paths;  ///< fnmatch globs
  std::vector<std::pair<std::string, Bytes>> ima_deny_digests;
  std::vector<std::string> ima_exclude;    ///< fnmatch globs: entries never appraised
  std::vector<std::string> image_digests;  ///< "sha256:<hex>"
  std::vector<std::string> image_refs;     ///< fnmatch globs
};

/// Parses the TOML reference values; errors name the key and what was wrong.
Result<Policy> parse_policy(std::string_view toml);

/// A neutral boot event (adapted from the firmware event log parser's output).
struct BootEvent {
  unsigned pcr = 0;
  std::uint32_t type = 0;  ///< TCG event type, e.g. 0x80000003 EV_EFI_BOOT_SERVICES_APPLICATION
  std::vector<std::pair<TpmAlg, Bytes>> digests;
  std::optional<Bytes> authenticode;  ///< PE image digest for boot services applications
};

struct BootEvidence {
  std::vector<BootEvent> events;
  std::optional<bool> secure_boot;  ///< decoded SecureBoot variable; nullopt = not in the log
};

struct Evidence {
  const PcrValues* pcrs = nullptr;
  const BootEvidence* boot = nullptr;
  std::span<const ima::EntryView> ima;  ///< ima::views() of owning entries
  std::span<const cel::Record> containers;
};

struct Reason {
  std::string code;     ///< "pcr.mismatch", "boot.denied_application", "ima.not_allowed", ...
  std::string subject;  ///< which PCR / event / file / image
  std::string expected;
  std::string found;
};

struct Verdict {
  bool pass = false;
  std::string policy_version;
  std::vector<Reason> reasons;
};

/// Applies every rule of `policy` to `evidence`; every failure is one reason.
Verdict appraise(const Policy& policy, const Evidence& evidence);

}  // namespace warden::attest::policy
