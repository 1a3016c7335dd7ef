#include "platform/base/pcr_selection.h"

#include <charconv>

#include <fmt/format.h>

namespace warden {

std::string_view hash_name(TpmAlg alg) {
  switch (alg) {
    case TpmAlg::kSha1:
      return "sha1";
    case TpmAlg::kSha256:
      return "sha256";
    case TpmAlg::kSha384:
      return "sha384";
    case TpmAlg::kSha512:
      return "sha512";
  }
  return "unknown";
}

std::optional<TpmAlg> hash_from_name(std::string_view name) {
  for (TpmAlg alg : {TpmAlg::kSha1, TpmAlg::kSha256, TpmAlg::kSha384, TpmAlg::kSha512}) {
    if (hash_name(alg) == name) return alg;
  }
  return std::nullopt;
}

std::optional<TpmAlg> hash_from_tpm_id(std::uint16_t id) {
  switch (id) {
    case 0x0004:
      return TpmAlg::kSha1;
    case 0x000B:
      return TpmAlg::kSha256;
    case 0x000C:
      return TpmAlg::kSha384;
    case 0x000D:
      return TpmAlg::kSha512;
    default:
      return std::nullopt;
  }
}

ossl::Hash to_ossl(TpmAlg alg) {
  switch (alg) {
    case TpmAlg::kSha1:
      return ossl::Hash::kSha1;
    case TpmAlg::kSha256:
      return ossl::Hash::kSha256;
    case TpmAlg::kSha384:
      return ossl::Hash::kSha384;
    case TpmAlg::kSha512:
      return ossl::Hash::kSha512;
  }
  return ossl::Hash::kSha256;
}

std::size_t hash_size(TpmAlg alg) { return ossl::digest_size(to_ossl(alg)); }

namespace {
Result<unsigned> parse_index(std::string_view s, std::string_view whole) {
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v >= kPcrCount) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("PCR selection \"{}\": \"{}\" is not a PCR index 0-23", whole, s));
  }
  return v;
}
}  // namespace

Result<PcrSelection> PcrSelection::parse(std::string_view text) {
  PcrSelection out;
  std::string_view rest = text;
  while (!rest.empty()) {
    auto plus = rest.find('+');
    std::string_view part = rest.substr(0, plus);
    rest = plus == std::string_view::npos ? std::string_view() : rest.substr(plus + 1);
    auto colon = part.find(':');
    if (colon == std::string_view::npos) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("PCR selection \"{}\": expected BANK:PCRS like sha256:0,1,2", text));
    }
    auto alg = hash_from_name(part.substr(0, colon));
    if (!alg) {
      return fail(ErrorCode::kInvalidArgument,
                  fmt::format("PCR selection \"{}\": unknown bank \"{}\" (sha1, sha256, sha384, "
                              "sha512)",
                              text, part.substr(0, colon)));
    }
    PcrBank bank{*alg, {}};
    std::string_view list = part.substr(colon + 1);
    while (!list.empty()) {
      auto comma = list.find(',');
      std::string_view item = list.substr(0, comma);
      list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      auto dash = item.find('-');
      auto first = parse_index(item.substr(0, dash), text);
      if (!first) return fail(first.error());
      unsigned last = *first;
      if (dash != std::string_view::npos) {
        auto l = parse_index(item.substr(dash + 1), text);
        if (!l) return fail(l.error());
        last = *l;
      }
      for (unsigned i = *first; i <= last; ++i) bank.pcrs.set(i);
    }
    if (bank.pcrs.none()) {
      return fail(
          ErrorCode::kInvalidArgument,
          fmt::format("PCR selection \"{}\": bank {} selects no PCR", text, hash_name(*alg)));
    }
    for (const PcrBank& b : out.banks) {
      if (b.alg == bank.alg) {
        return fail(
            ErrorCode::kInvalidArgument,
            fmt::format("PCR selection \"{}\": bank {} given twice", text, hash_name(*alg)));
      }
    }
    out.banks.push_back(bank);
  }
  if (out.banks.empty()) {
    return fail(ErrorCode::kInvalidArgument, "PCR selection is empty");
  }
  return out;
}

std::string PcrSelection::to_string() const {
  std::string out;
  for (const PcrBank& bank : banks) {
    if (!out.empty()) out += '+';
    out += hash_name(bank.alg);
    out += ':';
    bool first = true;
    for (std::size_t i = 0; i < kPcrCount; ++i) {
      if (!bank.pcrs.test(i)) continue;
      if (!first) out += ',';
      out += std::to_string(i);
      first = false;
    }
  }
  return out;
}

bool PcrSelection::empty() const {
  for (const PcrBank& b : banks) {
    if (b.pcrs.any()) return false;
  }
  return true;
}

}  // namespace warden
