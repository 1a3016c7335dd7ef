#include "attest/pcr_values.h"

#include <cctype>

#include <fmt/format.h>

#include "platform/base/encoding.h"

namespace warden::attest {

void PcrValues::init_bank(TpmAlg alg) {
  Bank bank{alg, {}};
  for (Bytes& pcr : bank.pcrs) pcr.assign(hash_size(alg), 0);
  if (Bank* existing = find(alg)) {
    *existing = std::move(bank);
  } else {
    banks_.push_back(std::move(bank));
  }
}

bool PcrValues::has_bank(TpmAlg alg) const { return find(alg) != nullptr; }

std::vector<TpmAlg> PcrValues::banks() const {
  std::vector<TpmAlg> out;
  out.reserve(banks_.size());
  for (const Bank& b : banks_) out.push_back(b.alg);
  return out;
}

const Bytes* PcrValues::get(TpmAlg alg, unsigned index) const {
  const Bank* bank = find(alg);
  if (bank == nullptr || index >= kPcrCount) return nullptr;
  return &bank->pcrs[index];
}

Status PcrValues::set(TpmAlg alg, unsigned index, ByteSpan value) {
  Bank* bank = find(alg);
  if (bank == nullptr || index >= kPcrCount || value.size() != hash_size(alg)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("set PCR {} in bank {}: no such PCR or wrong value size {}", index,
                            hash_name(alg), value.size()));
  }
  bank->pcrs[index].assign(value.begin(), value.end());
  return ok();
}

Status PcrValues::extend(TpmAlg alg, unsigned index, ByteSpan digest) {
  Bank* bank = find(alg);
  if (bank == nullptr || index >= kPcrCount || digest.size() != hash_size(alg)) {
    return fail(ErrorCode::kInvalidArgument,
                fmt::format("extend PCR {} in bank {}: no such PCR or digest size {}", index,
                            hash_name(alg), digest.size()));
  }
  Bytes& pcr = bank->pcrs[index];
  pcr.insert(pcr.end(), digest.begin(), digest.end());
  auto next = ossl::digest(to_ossl(alg), pcr);
  if (!next) return fail(next.error());
  pcr = std::move(*next);
  return ok();
}

PcrValues::Bank* PcrValues::find(TpmAlg alg) {
  for (Bank& b : banks_) {
    if (b.alg == alg) return &b;
  }
  return nullptr;
}

const PcrValues::Bank* PcrValues::find(TpmAlg alg) const {
  for (const Bank& b : banks_) {
    if (b.alg == alg) return &b;
  }
  return nullptr;
}

Result<Bytes> pcr_composite_digest(const PcrSelection& selection, const PcrValues& values,
                                   ossl::Hash hash) {
  auto hasher = ossl::Hasher::create(hash);
  if (!hasher) return fail(hasher.error());
  for (const PcrBank& bank : selection.banks) {
    if (!values.has_bank(bank.alg)) {
      return fail(ErrorCode::kPcrSelectionMismatch,
                  fmt::format("PCR digest: no values for bank {}", hash_name(bank.alg)));
    }
    for (unsigned i = 0; i < kPcrCount; ++i) {
      if (bank.pcrs.test(i)) hasher->update(*values.get(bank.alg, i));
    }
  }
  return hasher->finish();
}

std::string format_pcrs(const PcrValues& values, const PcrSelection* selection) {
  std::string out;
  auto emit_bank = [&](TpmAlg alg, const std::bitset<kPcrCount>& pcrs) {
    out += fmt::format("{}:\n", hash_name(alg));
    for (unsigned i = 0; i < kPcrCount; ++i) {
      if (!pcrs.test(i)) continue;
      std::string hex = hex_encode(*values.get(alg, i));
      for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      out += fmt::format("  {} : 0x{}\n", i, hex);
    }
  };
  if (selection == nullptr) {
    for (TpmAlg alg : values.banks()) emit_bank(alg, std::bitset<kPcrCount>().set());
  } else {
    for (const PcrBank& bank : selection->banks) {
      if (values.has_bank(bank.alg)) emit_bank(bank.alg, bank.pcrs);
    }
  }
  return out;
}

}  // namespace warden::attest
