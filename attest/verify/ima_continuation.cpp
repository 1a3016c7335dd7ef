// The IMA stage: continues the device's replay of its measurement list with this upload.
#include <algorithm>
#include <charconv>

#include "attest/verify/stages.h"
#include "platform/base/encoding.h"

namespace warden::attest::verify {
namespace ima = attest::ima;

Bytes encode_ima_state(const PcrValues& pcrs) {
  ByteWriter w;
  for (TpmAlg bank : pcrs.banks()) {
    w.u16be(static_cast<std::uint16_t>(bank));
    for (unsigned i = 0; i < kPcrCount; ++i) w.bytes(*pcrs.get(bank, i));
  }
  return std::move(w).take();
}

Result<PcrValues> decode_ima_state(ByteSpan data) {
  ByteReader r(data, "IMA replay state");
  PcrValues pcrs;
  while (!r.empty()) {
    auto id = r.u16be("bank");
    if (!id) return fail(std::move(id).error());
    auto bank = hash_from_tpm_id(*id);
    if (!bank) return fail(r.error("bank", "unknown algorithm"));
    pcrs.init_bank(*bank);
    for (unsigned i = 0; i < kPcrCount; ++i) {
      auto v = r.bytes(hash_size(*bank), "pcr");
      if (!v) return fail(std::move(v).error());
      WARDEN_TRY_STATUS(pcrs.set(*bank, i, *v));
    }
  }
  return pcrs;
}

namespace detail {
namespace {

// Kernels before 5.8 extend non-SHA-1 banks with the zero-padded SHA-1 template hash.
ima::BankRule bank_rule(const std::optional<std::string>& kernel) {
  if (!kernel) return ima::BankRule::kTemplateDataHash;
  int major = 0, minor = 0;
  const char* p = kernel->data();
  const char* end = p + kernel->size();
  auto r1 = std::from_chars(p, end, major);
  if (r1.ec == std::errc() && r1.ptr < end && *r1.ptr == '.')
    std::from_chars(r1.ptr + 1, end, minor);
  if (major > 0 && (major < 5 || (major == 5 && minor < 8))) return ima::BankRule::kPaddedSha1;
  return ima::BankRule::kTemplateDataHash;
}

// The banks the IMA replay keeps: those quoted for PCR 10, plus those of the carried state (it
// stays whole, so a later quote of them still verifies). Each bank costs two digests per entry.
std::vector<TpmAlg> ima_banks(const PcrSelection& selection, const PcrValues& carried) {
  std::vector<TpmAlg> banks;
  auto add = [&](TpmAlg alg) {
    if (std::find(banks.begin(), banks.end(), alg) == banks.end()) banks.push_back(alg);
  };
  for (const PcrBank& b : selection.banks) {
    if (b.pcrs.test(kImaPcr)) add(b.alg);
  }
  for (TpmAlg alg : carried.banks()) add(alg);
  if (banks.empty()) banks = ima::ReplayOptions{}.banks;  // PCR 10 not quoted (refused anyway)
  return banks;
}

}  // namespace

Status replay_ima(const protocol::AttestRequest& req, const DeviceRecord& device,
                  const PcrSelection& selection, VerifiedEvidence& out, Findings& f) {
  if (!req.ima) return ok();
  if (!std::any_of(selection.banks.begin(), selection.banks.end(),
                   [](const PcrBank& b) { return b.pcrs.test(kImaPcr); })) {
    f.refuse(ErrorCode::kPcrSelectionMismatch, "PCR 10", "not quoted", "quoted with an IMA list");
  }
  // Offset 0 is the whole list, evidence on its own: accepted at any time and replayed from the
  // start (an agent that restarted, or one refused because the stored state lacks a bank now
  // quoted, starts over this way).
  const bool restart = out.rebooted || device.ima_state.empty() || req.ima->offset == 0;
  const std::uint64_t expected_offset = restart ? 0 : device.ima_entries;
  if (req.ima->offset != expected_offset) {
    f.refuse(ErrorCode::kInvalidArgument, "ima offset", std::to_string(req.ima->offset),
             std::to_string(expected_offset));
    return ok();
  }
  // A binary list is parsed into views of the request's bytes (which outlive `out`).
  Result<std::vector<ima::EntryView>> entries = std::vector<ima::EntryView>{};
  if (req.ima->format == protocol::ImaFormat::kAscii) {
    auto owned = ima::parse_ascii(warden::to_string(req.ima->entries));
    if (owned) {
      out.ima_ascii = std::move(*owned);
      entries = ima::views(out.ima_ascii);
    } else {
      entries = fail(std::move(owned).error());
    }
  } else {
    entries = ima::parse_binary_view(req.ima->entries);
  }
  if (!entries) {
    f.refuse(ErrorCode::kMalformed, "ima", entries.error().message);
    return ok();
  }
  ima::ReplayOptions opts;
  opts.rule = bank_rule(req.kernel_version);
  ima::ReplayState start;
  if (!restart) {
    auto pcrs = decode_ima_state(device.ima_state);
    if (!pcrs) return fail(std::move(pcrs).error().context("attest: stored IMA state"));
    start = ima::ReplayState{device.ima_entries, std::move(*pcrs)};
  }
  opts.banks = ima_banks(selection, start.pcrs);
  if (restart) start = ima::initial_state(opts);
  // The list grows while the TPM quotes: a reported PCR 10 finds the prefix that was quoted (the
  // value itself is trusted only through the quote's digest).
  const protocol::PcrValue* hint = nullptr;
  for (const auto& v : req.pcr_values) {
    auto bank = hash_from_tpm_id(v.alg);
    if (v.pcr == kImaPcr && bank && selected(selection, *bank, kImaPcr)) hint = &v;
  }
  auto result = hint != nullptr
                    ? ima::replay_to_quote(*entries, std::move(start), *hash_from_tpm_id(hint->alg),
                                           hint->digest, kImaPcr, opts)
                    : ima::replay(*entries, std::move(start), opts);
  if (!result) {
    f.refuse(result.error().code, "ima", result.error().message);
    return ok();
  }
  for (const auto& p : result->problems)
    f.refuse(p.code, "ima entry " + std::to_string(p.index), p.message);
  // Entries after the quoted prefix were not covered by the quote: never returned.
  const auto covered = static_cast<std::size_t>(result->state.entries - req.ima->offset);
  entries->resize(std::min(entries->size(), covered));
  out.ima_entries = std::move(*entries);
  take_pcr(out.pcrs, result->state.pcrs, selection, kImaPcr);
  out.ima_state = std::move(result->state);
  return ok();
}

}  // namespace detail
}  // namespace warden::attest::verify
