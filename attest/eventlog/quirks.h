#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/bytes.h"

/// Firmware and bootloader deviations from the PC Client PFP that the event-log parser, the replay
/// and the digest check tolerate, as a table of named workarounds (after go-attestation's
/// eventlog_workarounds.go). Every workaround that changes a result is reported by its stable id,
/// so a reviewer sees what was tolerated; tests switch one off to show a log needs it.
namespace warden::attest::eventlog {

struct Event;

enum class QuirkId : std::uint8_t {
  kSpecIdVendorInfoOverrun,
  kTrailingZeroPadding,
  kStartupLocality,
  kHcrtmLocality,
  kVariableBootDataOnly,
  kGrubIplText,
  kShimMokIplText,
};
inline constexpr std::size_t kQuirkCount = 7;

/// Which workarounds may apply; all by default.
class QuirkSet {
 public:
  static QuirkSet all();
  static QuirkSet none();
  [[nodiscard]] QuirkSet without(QuirkId id) const;
  [[nodiscard]] bool has(QuirkId id) const;

 private:
  std::bitset<kQuirkCount> enabled_;
};

/// What a digest-check workaround says about an event's digests.
struct DigestInputs {
  bool uncheckable = false;  ///< the digest covers bytes the log does not carry
  std::vector<Bytes> extra;  ///< further byte strings the digest may be the hash of
};

/// One workaround. Exactly one hook is set; the stage owning it consults the table. Event hooks are
/// called only for events on one of `pcrs`.
struct Quirk {
  QuirkId id;
  std::string_view name;  ///< stable id, reported in results
  std::uint32_t pcrs;     ///< bit i: may affect PCR i (0: shapes parsing only)
  std::string_view summary;
  /// Parse, Spec ID record: how many of the `following` bytes belong to a vendorInfo that declares
  /// `missing` bytes more than the record holds (0: none).
  std::size_t (*vendor_info_overrun)(std::size_t missing, ByteSpan following) = nullptr;
  /// Parse: `rest`, the buffer after the last record, is padding rather than records.
  bool (*is_padding)(ByteSpan rest) = nullptr;
  /// Replay: the locality this event sets PCR 0's initial value to (nullopt: not such an event).
  std::optional<std::uint8_t> (*pcr0_locality)(const Event& e) = nullptr;
  /// Digest check: nullopt when the workaround does not concern this event.
  std::optional<DigestInputs> (*digest_inputs)(const Event& e) = nullptr;
};

std::span<const Quirk> quirk_table();
const Quirk& quirk(QuirkId id);

/// A workaround that changed a parse, replay or digest-check result.
struct AppliedQuirk {
  std::string_view id;     ///< Quirk::name (static storage)
  std::size_t offset = 0;  ///< byte offset in the log of the record (or padding) concerned
  std::string detail;
};

/// The first enabled quirk with `hook` set that may touch `e` (its PCR in the quirk's mask and the
/// hook's answer set), with that answer.
template <typename Answer>
struct QuirkAnswer {
  const Quirk* quirk = nullptr;
  Answer answer{};
};
QuirkAnswer<std::uint8_t> find_pcr0_locality(const Event& e, const QuirkSet& enabled);
QuirkAnswer<DigestInputs> find_digest_inputs(const Event& e, const QuirkSet& enabled);

}  // namespace warden::attest::eventlog
