#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "attest/pcr_values.h"
#include "platform/base/bytes.h"
#include "platform/base/error.h"
#include "platform/base/pcr_selection.h"

/// Linux IMA measurement list (binary_runtime_measurements / ascii_runtime_measurements):
/// parsing, template-hash checks, PCR replay per bank and the boot_aggregate check.
/// See design/TPM-NOTES.md section 5. Pure: no I/O, no TPM.
namespace warden::attest::ima {

struct EntryView;

/// One measurement, owning its bytes. `template_data` is exactly what the kernel hashed: for the
/// legacy `ima` template that is digest[20] || path zero-padded to 256 bytes, for every other
/// template the concatenated `u32 length || field` records.
struct Entry {
  std::uint32_t pcr = 0;
  Bytes template_hash;        ///< as shown in the list (SHA-1 in the classic files)
  std::string template_name;  ///< "ima", "ima-ng", "ima-sig", ...
  Bytes template_data;
  std::string digest_type;  ///< d-ngv2 prefix ("ima", "verity"); empty otherwise
  std::string digest_algo;  ///< "sha1", "sha256", ... ("sha1" for the legacy template)
  Bytes file_digest;
  std::string path;  ///< n / n-ng, without the terminating NUL
  Bytes signature;   ///< sig field (ima-sig, ima-sigv2, ima-modsig); may be empty
  Bytes buffer;      ///< buf field (ima-buf)
  Bytes modsig;      ///< modsig field (ima-modsig)

  /// A ToMToU / open-writers violation: the list shows a zero template hash.
  [[nodiscard]] bool violation() const;
  /// A view of this entry: valid while this entry lives and is not modified.
  [[nodiscard]] EntryView view() const;
  /// An owning copy of `v` (the legacy template's data is rebuilt).
  static Entry from(const EntryView& v);
};

/// One measurement as views, without copies: into the binary list it was parsed from
/// (parse_binary_view) or into an owning Entry (Entry::view()). Valid only while those bytes
/// live unchanged. Fields mean what they mean in Entry.
struct EntryView {
  std::uint32_t pcr = 0;
  ByteSpan template_hash;
  std::string_view template_name;
  /// What the kernel hashed. Empty for a legacy `ima` entry of a binary list, whose template data
  /// (file_digest || path zero-padded to 256 bytes) is not in the list; the replay rebuilds it.
  ByteSpan template_data;
  std::string_view digest_type;
  std::string_view digest_algo;
  ByteSpan file_digest;
  std::string_view path;
  ByteSpan signature;
  ByteSpan buffer;
  ByteSpan modsig;

  [[nodiscard]] bool violation() const;
};

/// Views of `entries` (valid while `entries` lives unchanged).
std::vector<EntryView> views(std::span<const Entry> entries);

enum class Format { kBinary, kAscii };

/// Limits for untrusted lists.
struct Limits {
  std::size_t max_entries = 4'000'000;
  std::size_t max_template_data = 1u << 20;  ///< per entry (ima-buf carries keys, policies)
};

/// Binary or ASCII, decided from the first bytes (an ASCII list starts with decimal digits and a
/// space; a binary one with a 32-bit PCR index).
Format detect_format(ByteSpan list);

/// Binary list (little-endian by default, big-endian detected from the first PCR index).
Result<std::vector<Entry>> parse_binary(ByteSpan list, const Limits& limits = {});
/// The same, without a copy of any entry's bytes: the views point into `list`, which must outlive
/// them unchanged (a temporary Bytes is refused at compile time).
Result<std::vector<EntryView>> parse_binary_view(ByteSpan list, const Limits& limits = {});
Result<std::vector<EntryView>> parse_binary_view(Bytes&& list, const Limits& limits = {}) = delete;
/// ASCII list; template data is rebuilt from the fields so entries replay like binary ones.
Result<std::vector<Entry>> parse_ascii(std::string_view list, const Limits& limits = {});
/// Either form, detected.
Result<std::vector<Entry>> parse(ByteSpan list, const Limits& limits = {});

/// What went into the non-SHA-1 banks.
enum class BankRule {
  kTemplateDataHash,  ///< kernel >= 5.8: bank hash of the template data
  kPaddedSha1,        ///< kernel < 5.8: the SHA-1 template hash zero-padded to the bank size
};

struct ReplayOptions {
  std::vector<TpmAlg> banks{TpmAlg::kSha1, TpmAlg::kSha256};
  BankRule rule = BankRule::kTemplateDataHash;
  /// Check SHA-1(template data) against each entry's template hash (classic lists only).
  bool check_template_hash = true;
};

/// Carried between attestations so a device sends only new entries: the number of entries
/// already replayed and the running PCR values (all PCRs an entry named, usually only 10).
struct ReplayState {
  std::uint64_t entries = 0;
  PcrValues pcrs;
};

/// An entry the replay could not vouch for (its index counts from the start of the list).
struct EntryProblem {
  std::uint64_t index = 0;
  ErrorCode code = ErrorCode::kMalformed;
  std::string message;
};

struct ReplayResult {
  ReplayState state;
  std::vector<EntryProblem> problems;  ///< template-hash mismatches etc; empty when clean
};

/// A state with every PCR of the requested banks zero and no entries replayed.
ReplayState initial_state(const ReplayOptions& options = {});

/// Replays `entries`, which continue the list at index `state.entries`, on top of `state`.
/// Banks missing from `state.pcrs` are added (all zero) when state.entries == 0; otherwise
/// they are an error. Fails only on unusable input (bad PCR index, unknown bank).
Result<ReplayResult> replay(std::span<const EntryView> entries, ReplayState state,
                            const ReplayOptions& options = {});
Result<ReplayResult> replay(std::span<const Entry> entries, ReplayState state,
                            const ReplayOptions& options = {});

/// The shortest prefix of `entries` (continuing `state`) whose replay gives `quoted` for PCR
/// `pcr` in bank `bank` (the list grows while the TPM quotes). Returns the state after that
/// prefix (state.entries tells how many entries it covers), or kReplayMismatch.
Result<ReplayResult> replay_to_quote(std::span<const EntryView> entries, ReplayState state,
                                     TpmAlg bank, ByteSpan quoted, unsigned pcr = 10,
                                     const ReplayOptions& options = {});
Result<ReplayResult> replay_to_quote(std::span<const Entry> entries, ReplayState state, TpmAlg bank,
                                     ByteSpan quoted, unsigned pcr = 10,
                                     const ReplayOptions& options = {});

enum class BootAggregate { kMatch, kNoTpm };

/// Checks the boot_aggregate entry: sha1 => H(PCR0..7), other banks => H(PCR0..9), using the
/// bank of the entry's digest algorithm from `pcrs`. A zero digest means no TPM at IMA init
/// (kNoTpm). Mismatch => kPcrDigestMismatch; bank absent from `pcrs` => kPcrSelectionMismatch.
Result<BootAggregate> check_boot_aggregate(const EntryView& entry, const PcrValues& pcrs);
Result<BootAggregate> check_boot_aggregate(const Entry& entry, const PcrValues& pcrs);

/// Kernel hash-algorithm name ("sha256") to TpmAlg, where Warden supports it.
std::optional<TpmAlg> ima_hash_alg(std::string_view name);

}  // namespace warden::attest::ima
