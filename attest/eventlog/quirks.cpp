#include "attest/eventlog/quirks.h"

#include <algorithm>
#include <array>

#include "attest/eventlog/event_data.h"
#include "attest/eventlog/eventlog.h"

namespace warden::attest::eventlog {
namespace {

using detail::looks_utf16;
using detail::starts_with;

constexpr std::uint32_t pcr_bit(unsigned pcr) { return 1u << pcr; }

// tpm2-tools' specid-vendordata fixture: vendorInfoSize counts bytes stored after EventSize.
std::size_t take_vendor_info(std::size_t missing, ByteSpan following) {
  return missing <= following.size() ? missing : 0;
}

// Firmware hands over its whole log buffer, zero-filled after the last record.
bool zero_filled(ByteSpan rest) {
  if (rest.size() >= 8 && !detail::all_zero(rest.first(std::min<std::size_t>(rest.size(), 32))))
    return false;
  return detail::all_zero(rest);
}

// PFP 10.4.5.3: an EV_NO_ACTION "StartupLocality" event gives the locality of TPM2_Startup.
std::optional<std::uint8_t> startup_locality(const Event& e) {
  if (e.type != kEvNoAction || e.data.size() < 17 || !starts_with(e.data, detail::kStartupLocality))
    return std::nullopt;
  return e.data[16];
}

// An H-CRTM measurement means PCR 0 was reset at locality 4 before the firmware ran.
std::optional<std::uint8_t> hcrtm_locality(const Event& e) {
  if (e.type != kEvEfiHcrtmEvent) return std::nullopt;
  return std::uint8_t{4};
}

// OVMF/GCE-style firmware hashes only VariableData, not the whole UEFI_VARIABLE_DATA.
std::optional<DigestInputs> variable_data_only(const Event& e) {
  if (e.type != kEvEfiVariableBoot && e.type != kEvEfiVariableBoot2) return std::nullopt;
  auto v = parse_uefi_variable(e.data);
  if (!v) return std::nullopt;
  DigestInputs in;
  in.extra.push_back(std::move(v->data));
  return in;
}

// grub logs the command or file name as text but hashes the command line or the file itself.
std::optional<DigestInputs> grub_ipl_text(const Event& e) {
  if (e.type != kEvIpl || looks_utf16(e.data)) return std::nullopt;
  return DigestInputs{.uncheckable = true, .extra = {}};
}

// shim logs a MOK variable's name ("MokList", "MokListX", "MokListTrusted") and hashes its value.
std::optional<DigestInputs> shim_mok_name(const Event& e) {
  if (e.type != kEvIpl || !starts_with(e.data, "Mok")) return std::nullopt;
  return DigestInputs{.uncheckable = true, .extra = {}};
}

constexpr std::array<Quirk, kQuirkCount> kQuirks{{
    {.id = QuirkId::kSpecIdVendorInfoOverrun,
     .name = "specid-vendorinfo-overrun",
     .pcrs = pcr_bit(0),
     .summary = "Spec ID Event03 vendorInfoSize runs past EventSize; the bytes after it are taken",
     .vendor_info_overrun = take_vendor_info},
    {.id = QuirkId::kTrailingZeroPadding,
     .name = "trailing-zero-padding",
     .pcrs = 0,
     .summary = "the log ends in zero bytes (the firmware's unused buffer), not in a record",
     .is_padding = zero_filled},
    {.id = QuirkId::kStartupLocality,
     .name = "startup-locality",
     .pcrs = pcr_bit(0),
     .summary = "EV_NO_ACTION StartupLocality sets PCR 0's initial value to its locality",
     .pcr0_locality = startup_locality},
    {.id = QuirkId::kHcrtmLocality,
     .name = "hcrtm-locality",
     .pcrs = pcr_bit(0),
     .summary = "EV_EFI_HCRTM_EVENT: PCR 0 starts at locality 4",
     .pcr0_locality = hcrtm_locality},
    {.id = QuirkId::kVariableBootDataOnly,
     .name = "efi-variable-boot-data-only",
     .pcrs = pcr_bit(1),
     .summary = "EV_EFI_VARIABLE_BOOT digest covers only VariableData",
     .digest_inputs = variable_data_only},
    {.id = QuirkId::kGrubIplText,
     .name = "grub-ipl-text",
     .pcrs = pcr_bit(8) | pcr_bit(9),
     .summary = "grub EV_IPL text names what was hashed; its digest is not checkable",
     .digest_inputs = grub_ipl_text},
    {.id = QuirkId::kShimMokIplText,
     .name = "shim-mok-ipl-name",
     .pcrs = pcr_bit(14),
     .summary = "shim EV_IPL carries the MOK variable's name; its digest is of the value",
     .digest_inputs = shim_mok_name},
}};

constexpr bool indexed_by_id() {
  for (std::size_t i = 0; i < kQuirks.size(); ++i)
    if (static_cast<std::size_t>(kQuirks[i].id) != i) return false;
  return true;
}
static_assert(indexed_by_id(), "quirk(id) indexes kQuirks by QuirkId");

template <typename Answer, typename Hook>
QuirkAnswer<Answer> find(const Event& e, const QuirkSet& enabled, Hook Quirk::*hook) {
  if (e.pcr >= 32) return {};
  for (const Quirk& q : kQuirks) {
    if (q.*hook == nullptr || !enabled.has(q.id) || (q.pcrs & pcr_bit(e.pcr)) == 0) continue;
    if (auto a = (q.*hook)(e)) return {&q, std::move(*a)};
  }
  return {};
}

}  // namespace

QuirkSet QuirkSet::all() {
  QuirkSet s;
  s.enabled_.set();
  return s;
}

QuirkSet QuirkSet::none() { return QuirkSet{}; }

QuirkSet QuirkSet::without(QuirkId id) const {
  QuirkSet s = *this;
  s.enabled_.reset(static_cast<std::size_t>(id));
  return s;
}

bool QuirkSet::has(QuirkId id) const { return enabled_.test(static_cast<std::size_t>(id)); }

std::span<const Quirk> quirk_table() { return kQuirks; }

const Quirk& quirk(QuirkId id) { return kQuirks[static_cast<std::size_t>(id)]; }

QuirkAnswer<std::uint8_t> find_pcr0_locality(const Event& e, const QuirkSet& enabled) {
  return find<std::uint8_t>(e, enabled, &Quirk::pcr0_locality);
}

QuirkAnswer<DigestInputs> find_digest_inputs(const Event& e, const QuirkSet& enabled) {
  return find<DigestInputs>(e, enabled, &Quirk::digest_inputs);
}

}  // namespace warden::attest::eventlog
