#include "attest/eventlog/eventlog.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "attest/eventlog/event_data.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::attest::eventlog {
namespace {

using detail::kSpecIdSignature;
using detail::starts_with;

constexpr std::size_t kSha1Size = 20;

std::string hex(ByteSpan b) { return hex_encode(b); }

// Legacy TCG_PCR_EVENT.
Result<Event> read_legacy(ByteReader& r) {
  Event e;
  e.offset = r.offset();
  auto pcr = r.u32le("PCRIndex");
  if (!pcr) return fail(pcr.error());
  auto type = r.u32le("EventType");
  if (!type) return fail(type.error());
  auto digest = r.bytes(kSha1Size, "Digest");
  if (!digest) return fail(digest.error());
  auto size = r.u32le("EventSize");
  if (!size) return fail(size.error());
  auto data = r.bytes(*size, "Event");
  if (!data) return fail(data.error());
  e.pcr = *pcr;
  e.type = *type;
  e.digests.push_back(
      {static_cast<std::uint16_t>(TpmAlg::kSha1), Bytes(digest->begin(), digest->end())});
  e.data.assign(data->begin(), data->end());
  return e;
}

// Crypto-agile TCG_PCR_EVENT2.
Result<Event> read_event2(ByteReader& r, const SpecIdEvent& spec) {
  Event e;
  e.offset = r.offset();
  auto pcr = r.u32le("PCRIndex");
  if (!pcr) return fail(pcr.error());
  auto type = r.u32le("EventType");
  if (!type) return fail(type.error());
  auto count = r.u32le("DigestCount");
  if (!count) return fail(count.error());
  if (*count > spec.algorithms.size())
    return fail(
        r.error("DigestCount", "expected at most " + std::to_string(spec.algorithms.size()) +
                                   " (Spec ID algorithms), found " + std::to_string(*count)));
  for (std::uint32_t i = 0; i < *count; ++i) {
    auto alg = r.u16le("AlgorithmId");
    if (!alg) return fail(alg.error());
    auto it = std::find_if(spec.algorithms.begin(), spec.algorithms.end(),
                           [&](const AlgorithmSize& a) { return a.alg == *alg; });
    if (it == spec.algorithms.end()) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%04x", *alg);
      return fail(r.error("AlgorithmId", std::string("algorithm 0x") + buf +
                                             " is not in the Spec ID Event03 table"));
    }
    auto d = r.bytes(it->digest_size, "Digest");
    if (!d) return fail(d.error());
    e.digests.push_back({*alg, Bytes(d->begin(), d->end())});
  }
  auto size = r.u32le("EventSize");
  if (!size) return fail(size.error());
  auto data = r.bytes(*size, "Event");
  if (!data) return fail(data.error());
  e.pcr = *pcr;
  e.type = *type;
  e.data.assign(data->begin(), data->end());
  return e;
}

}  // namespace

Result<EventLog> parse(ByteSpan log, const ParseOptions& options) {
  EventLog out;
  ByteReader r(log, "event log");
  // First record: always the legacy format.
  auto first = read_legacy(r);
  if (!first) return fail(first.error());
  first->index = 0;
  if (first->type == kEvNoAction && first->pcr == 0 && starts_with(first->data, kSpecIdSignature)) {
    std::size_t overrun = 0;
    auto spec = detail::parse_spec_id(first->data, r.rest(), &options.quirks, &overrun);
    if (!spec) {
      auto e = spec.error();
      e.message += " (in the first record at offset 0)";
      return fail(std::move(e));
    }
    out.crypto_agile = true;
    out.spec_id = std::move(*spec);
    if (overrun > 0) {
      WARDEN_TRY_STATUS(r.skip(overrun, "vendorInfo"));
      std::string what = "Spec ID Event03: vendorInfoSize runs " + std::to_string(overrun) +
                         " bytes past EventSize; took them from offset " +
                         std::to_string(r.offset() - overrun);
      out.warnings.push_back(what);
      out.quirks.push_back(
          {quirk(QuirkId::kSpecIdVendorInfoOverrun).name, first->offset, std::move(what)});
    }
  }
  out.events.push_back(std::move(*first));

  const bool padding_ok = options.quirks.has(QuirkId::kTrailingZeroPadding);
  while (!r.empty()) {
    if (padding_ok && quirk(QuirkId::kTrailingZeroPadding).is_padding(r.rest())) {
      out.quirks.push_back({quirk(QuirkId::kTrailingZeroPadding).name, r.offset(),
                            std::to_string(r.remaining()) + " zero bytes after the last event"});
      break;
    }
    if (out.events.size() >= options.max_events)
      return fail(ErrorCode::kLimitExceeded,
                  "event log: more than " + std::to_string(options.max_events) + " events");
    const std::size_t at = r.offset();
    auto ev = out.crypto_agile ? read_event2(r, *out.spec_id) : read_legacy(r);
    if (!ev) {
      if (!options.best_effort) return fail(ev.error());
      out.warnings.push_back("stopped at event " + std::to_string(out.events.size()) + " (offset " +
                             std::to_string(at) + "): " + ev.error().message);
      break;
    }
    ev->index = out.events.size();
    out.events.push_back(std::move(*ev));
  }
  return out;
}

Result<Replay> replay(const EventLog& log, const QuirkSet& quirks) {
  Replay out;
  std::vector<TpmAlg> banks;
  if (log.crypto_agile) {
    for (const auto& a : log.spec_id->algorithms) {
      if (auto alg = hash_from_tpm_id(a.alg)) {
        banks.push_back(*alg);
      } else {
        char buf[64];
        std::snprintf(buf, sizeof buf, "algorithm 0x%04x not replayed (unsupported)", a.alg);
        out.warnings.emplace_back(buf);
      }
    }
  } else {
    banks.push_back(TpmAlg::kSha1);
  }
  for (auto b : banks) out.pcrs.init_bank(b);

  bool pcr0_extended = false;
  // The Spec ID record is EV_NO_ACTION; in legacy logs the first record is a real event.
  for (const Event& e : log.events) {
    if (e.pcr >= kPcrCount) {
      out.warnings.push_back("event " + std::to_string(e.index) + ": PCR " + std::to_string(e.pcr) +
                             " out of range, not replayed");
      continue;
    }
    const auto locality = find_pcr0_locality(e, quirks);
    if (locality.quirk != nullptr && pcr0_extended) {
      out.warnings.push_back("event " + std::to_string(e.index) + ": " +
                             std::string(locality.quirk->name) +
                             " after PCR0 was extended; ignored");
    } else if (locality.quirk != nullptr) {
      for (auto b : banks) {
        Bytes init(hash_size(b), 0);
        init.back() = locality.answer;
        WARDEN_TRY_STATUS(out.pcrs.set(b, 0, init));
      }
      out.quirks.push_back({locality.quirk->name, e.offset,
                            "event " + std::to_string(e.index) + " sets PCR 0 to locality " +
                                std::to_string(locality.answer)});
    }
    if (e.type == kEvNoAction) continue;
    for (auto b : banks) {
      auto it = std::find_if(e.digests.begin(), e.digests.end(), [&](const EventDigest& d) {
        return d.alg == static_cast<std::uint16_t>(b);
      });
      if (it == e.digests.end()) {
        out.warnings.push_back("event " + std::to_string(e.index) + ": no " +
                               std::string(hash_name(b)) + " digest");
        continue;
      }
      WARDEN_TRY_STATUS(out.pcrs.extend(b, e.pcr, it->digest));
    }
    if (e.pcr == 0) pcr0_extended = true;
  }
  return out;
}

std::vector<DigestMismatch> check_digests(const EventLog& log) {
  return check_event_digests(log).mismatches;
}

DigestCheck check_event_digests(const EventLog& log, const QuirkSet& quirks) {
  DigestCheck out;
  for (const auto& e : log.events) {
    switch (e.type) {
      case kEvSeparator:
      case kEvEfiAction:
      case kEvAction:
      case kEvEfiVariableDriverConfig:
      case kEvEfiVariableBoot:
      case kEvEfiVariableBoot2:
      case kEvIpl:
        break;
      default:
        continue;  // the digest is of bytes the log does not carry (images, tables, ...)
    }
    const auto alt = find_digest_inputs(e, quirks);
    const auto applied = [&] {
      out.quirks.push_back({alt.quirk->name, e.offset,
                            "event " + std::to_string(e.index) + " (" + event_type_name(e.type) +
                                ", PCR " + std::to_string(e.pcr) +
                                "): " + std::string(alt.quirk->summary)});
    };
    if (alt.quirk != nullptr && alt.answer.uncheckable) {
      applied();
      continue;
    }
    bool used_alt = false;
    for (const auto& d : e.digests) {
      auto alg = hash_from_tpm_id(d.alg);
      if (!alg) continue;
      const auto matches = [&](ByteSpan c) {
        auto h = ossl::digest(to_ossl(*alg), c);
        return h && *h == d.digest;
      };
      if (matches(e.data)) continue;
      if (alt.quirk != nullptr && std::any_of(alt.answer.extra.begin(), alt.answer.extra.end(),
                                              [&](const Bytes& c) { return matches(c); })) {
        used_alt = true;
        continue;
      }
      out.mismatches.push_back(
          {e.index, "event " + std::to_string(e.index) + " (" + event_type_name(e.type) + ", PCR " +
                        std::to_string(e.pcr) + "): " + std::string(hash_name(*alg)) + " digest " +
                        hex(d.digest) + " does not match the hash of its data"});
      used_alt = false;
      break;
    }
    if (used_alt) applied();
  }
  return out;
}

Status check_replay_against_quote(const PcrValues& replayed, const PcrSelection& selection,
                                  ByteSpan pcr_digest, ossl::Hash hash, const PcrValues* reported) {
  auto digest = pcr_composite_digest(selection, replayed, hash);
  if (!digest) {
    return fail(ErrorCode::kReplayMismatch,
                "replay vs quote: the replay lacks a quoted bank (" + digest.error().message + ")");
  }
  if (ossl::equal_ct(*digest, pcr_digest)) return ok();
  std::string msg = "replay vs quote: quoted pcrDigest " + hex(pcr_digest) +
                    ", replayed event log gives " + hex(*digest) + " for " + selection.to_string();
  if (reported != nullptr) {
    std::string diff;
    for (const auto& bank : selection.banks) {
      for (unsigned i = 0; i < kPcrCount; ++i) {
        if (!bank.pcrs.test(i)) continue;
        const Bytes* a = replayed.get(bank.alg, i);
        const Bytes* b = reported->get(bank.alg, i);
        if (a == nullptr || b == nullptr || *a != *b) {
          if (!diff.empty()) diff += ", ";
          diff += std::string(hash_name(bank.alg)) + ":" + std::to_string(i);
          if (a != nullptr && b != nullptr)
            diff += " (replayed " + hex(*a) + ", reported " + hex(*b) + ")";
        }
      }
    }
    msg += diff.empty() ? "; no individual PCR differs from the reported values"
                        : "; PCRs that differ: " + diff;
  }
  return fail(ErrorCode::kReplayMismatch, std::move(msg));
}

}  // namespace warden::attest::eventlog
