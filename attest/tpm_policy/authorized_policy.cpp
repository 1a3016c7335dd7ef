#include "attest/tpm_policy/authorized_policy.h"

#include <algorithm>
#include <string>

#include <openssl/core_names.h>
#include <openssl/obj_mac.h>

#include "attest/quote/quote.h"
#include "attest/token/signer.h"
#include "platform/base/openssl.h"

namespace warden::attest::tpm_policy {
namespace {

// `var` names a declared variable, which parentheses would break.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define WARDEN_ASSIGN(var, expr)              \
  auto var##_r = (expr);                      \
  if (!var##_r) return fail(var##_r.error()); \
  auto var = std::move(*var##_r)
// NOLINTEND(bugprone-macro-parentheses)

constexpr std::string_view kMagic = "WAPOL";
constexpr std::uint8_t kVersion = 1;
constexpr std::string_view kEpochPrefix = "warden-seal";
constexpr std::size_t kDigestSize = 32;  // SHA-256
constexpr std::size_t kMaxBanks = 4;     // sha1, sha256, sha384, sha512
constexpr std::size_t kP256Field = 32;

std::size_t selected_count(const PcrSelection& selection) {
  std::size_t n = 0;
  for (const auto& bank : selection.banks) n += bank.pcrs.count();
  return n;
}

// A TPML_PCR_SELECTION from untrusted bytes; only the hash algorithms Warden knows.
Result<PcrSelection> read_selection(ByteSpan data) {
  ByteReader r(data, "approved policy: TPML_PCR_SELECTION");
  WARDEN_ASSIGN(count, r.u32be("count"));
  if (count == 0 || count > kMaxBanks) {
    return fail(r.error("count", "expected 1.." + std::to_string(kMaxBanks) + " banks, found " +
                                     std::to_string(count)));
  }
  PcrSelection selection;
  for (std::uint32_t i = 0; i < count; ++i) {
    WARDEN_ASSIGN(alg_id, r.u16be("hash"));
    auto alg = hash_from_tpm_id(alg_id);
    if (!alg) return fail(r.error("hash", "unsupported PCR bank " + std::to_string(alg_id)));
    for (const auto& bank : selection.banks) {
      if (bank.alg == *alg) return fail(r.error("hash", "bank listed twice"));
    }
    WARDEN_ASSIGN(size, r.u8("sizeofSelect"));
    if (size > kPcrCount / 8) {
      return fail(r.error("sizeofSelect", "expected at most 3, found " + std::to_string(size)));
    }
    WARDEN_ASSIGN(bits, r.bytes(size, "pcrSelect"));
    PcrBank bank{*alg, {}};
    for (std::size_t b = 0; b < bits.size() * 8; ++b) {
      if (((bits[b / 8] >> (b % 8)) & 1U) != 0) bank.pcrs.set(b);
    }
    if (bank.pcrs.none()) return fail(r.error("pcrSelect", "bank selects no PCR"));
    selection.banks.push_back(bank);
  }
  WARDEN_TRY_STATUS(r.expect_end());
  return selection;
}

// r and s of a TPMT_SIGNATURE that must be ECDSA with SHA-256.
Status check_signature(ByteSpan data) {
  ByteReader r(data, "approved policy: TPMT_SIGNATURE");
  WARDEN_ASSIGN(sig_alg, r.u16be("sigAlg"));
  if (sig_alg != quote::kAlgEcdsa) {
    return fail(r.error("sigAlg", "expected ECDSA (0x0018), found " + std::to_string(sig_alg)));
  }
  WARDEN_ASSIGN(hash, r.u16be("hash"));
  if (hash != static_cast<std::uint16_t>(TpmAlg::kSha256)) {
    return fail(r.error("hash", "expected SHA-256 (0x000b), found " + std::to_string(hash)));
  }
  for (const char* field : {"signatureR", "signatureS"}) {
    WARDEN_ASSIGN(v, r.tpm2b(field, kP256Field));
    if (v.empty()) return fail(r.error(field, "expected 1..32 bytes, found none"));
  }
  return r.expect_end();
}

}  // namespace

Bytes marshal_pcr_selection(const PcrSelection& selection) {
  ByteWriter w;
  w.u32be(static_cast<std::uint32_t>(selection.banks.size()));
  for (const auto& bank : selection.banks) {
    w.u16be(static_cast<std::uint16_t>(bank.alg)).u8(kPcrCount / 8);
    for (std::size_t byte = 0; byte < kPcrCount / 8; ++byte) {
      std::uint8_t bits = 0;
      for (std::size_t b = 0; b < 8; ++b) {
        if (bank.pcrs.test(byte * 8 + b)) bits = static_cast<std::uint8_t>(bits | (1U << b));
      }
      w.u8(bits);
    }
  }
  return std::move(w).take();
}

Result<std::vector<Bytes>> selected_values(const PcrSelection& selection, const PcrValues& values) {
  std::vector<Bytes> out;
  for (const auto& bank : selection.banks) {
    for (unsigned i = 0; i < kPcrCount; ++i) {
      if (!bank.pcrs.test(i)) continue;
      const Bytes* v = values.get(bank.alg, i);
      if (v == nullptr) {
        return fail(ErrorCode::kInvalidArgument,
                    "policy PCR values: bank " + std::string(hash_name(bank.alg)) + " missing");
      }
      out.push_back(*v);
    }
  }
  return out;
}

Result<Bytes> policy_pcr_digest(const PcrSelection& selection, const std::vector<Bytes>& values) {
  if (selection.empty()) {
    return fail(ErrorCode::kInvalidArgument, "PolicyPCR: expected a non-empty PCR selection");
  }
  if (values.size() != selected_count(selection)) {
    return fail(ErrorCode::kInvalidArgument,
                "PolicyPCR: expected " + std::to_string(selected_count(selection)) +
                    " PCR values, got " + std::to_string(values.size()));
  }
  Bytes concatenated;
  std::size_t k = 0;
  for (const auto& bank : selection.banks) {
    for (std::size_t i = 0; i < bank.pcrs.count(); ++i, ++k) {
      if (values[k].size() != hash_size(bank.alg)) {
        return fail(ErrorCode::kInvalidArgument, "PolicyPCR: value " + std::to_string(k) +
                                                     " of bank " +
                                                     std::string(hash_name(bank.alg)) + " has " +
                                                     std::to_string(values[k].size()) + " bytes");
      }
      concatenated.insert(concatenated.end(), values[k].begin(), values[k].end());
    }
  }
  ByteWriter w;
  w.bytes(Bytes(kDigestSize, 0)).u32be(kCcPolicyPcr).bytes(marshal_pcr_selection(selection));
  w.bytes(ossl::sha256(concatenated));
  return ossl::sha256(w.data());
}

Result<Bytes> policy_authorize_digest(ByteSpan key_name, ByteSpan policy_ref) {
  if (key_name.size() != 2 + kDigestSize) {
    return fail(ErrorCode::kInvalidArgument,
                "PolicyAuthorize: expected a 34-byte SHA-256 key "
                "name, got " +
                    std::to_string(key_name.size()) + " bytes");
  }
  if (policy_ref.size() > kMaxPolicyRef) {
    return fail(ErrorCode::kInvalidArgument, "PolicyAuthorize: policyRef longer than 64 bytes");
  }
  ByteWriter inner;
  inner.bytes(Bytes(kDigestSize, 0)).u32be(kCcPolicyAuthorize).bytes(key_name);
  ByteWriter outer;
  outer.bytes(ossl::sha256(inner.data())).bytes(policy_ref);
  return ossl::sha256(outer.data());
}

Result<Bytes> policy_nv_digest(ByteSpan prior, ByteSpan nv_name, ByteSpan operand_b,
                               std::uint16_t offset, std::uint16_t operation) {
  if (prior.size() != kDigestSize || nv_name.size() != 2 + kDigestSize) {
    return fail(ErrorCode::kInvalidArgument,
                "PolicyNV: expected a 32-byte prior digest and a 34-byte SHA-256 NV name");
  }
  ByteWriter args;
  args.bytes(operand_b).u16be(offset).u16be(operation);
  ByteWriter w;
  w.bytes(prior).u32be(kCcPolicyNv).bytes(ossl::sha256(args.data())).bytes(nv_name);
  return ossl::sha256(w.data());
}

Result<Bytes> approved_policy_digest(const PcrSelection& selection,
                                     const std::vector<Bytes>& values,
                                     const std::optional<CounterCheck>& counter) {
  WARDEN_ASSIGN(pcr, policy_pcr_digest(selection, values));
  if (!counter) return pcr;
  ByteWriter operand;
  operand.u64be(counter->value);
  return policy_nv_digest(pcr, counter->nv_name, operand.data(), 0, kEoEq);
}

Bytes approval_digest(ByteSpan approved_policy, ByteSpan policy_ref) {
  ByteWriter w;
  w.bytes(approved_policy).bytes(policy_ref);
  return ossl::sha256(w.data());
}

Bytes epoch_policy_ref(std::uint64_t epoch) {
  ByteWriter w;
  w.bytes(kEpochPrefix).u64be(epoch);
  return std::move(w).take();
}

std::optional<std::uint64_t> policy_ref_epoch(ByteSpan policy_ref) {
  if (policy_ref.size() != kEpochPrefix.size() + 8 ||
      !std::equal(kEpochPrefix.begin(), kEpochPrefix.end(), policy_ref.begin())) {
    return std::nullopt;
  }
  ByteReader r(policy_ref.subspan(kEpochPrefix.size()), "policyRef");
  auto epoch = r.u64be("epoch");
  if (!epoch) return std::nullopt;
  return *epoch;
}

Result<Bytes> authority_public_area(EVP_PKEY* key) {
  char group[64] = {};
  std::size_t group_len = 0;
  if (key == nullptr || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
      EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                     &group_len) != 1 ||
      std::string_view(group, group_len) != SN_X9_62_prime256v1) {
    (void)ossl::error("EVP_PKEY_get_utf8_string_param");  // drain the queue
    return fail(ErrorCode::kInvalidArgument, "sealing authority: expected an ECC P-256 key");
  }
  std::uint8_t point[1 + 2 * kP256Field];
  std::size_t point_len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point,
                                      &point_len) != 1 ||
      point_len != sizeof point || point[0] != 0x04) {
    return fail(ossl::error("sealing authority: uncompressed P-256 point"));
  }
  const ByteSpan xy(point + 1, 2 * kP256Field);
  ByteWriter t;
  t.u16be(quote::kAlgEcc).u16be(static_cast<std::uint16_t>(TpmAlg::kSha256));
  t.u32be(quote::kSign | quote::kUserWithAuth).tpm2b({});
  t.u16be(quote::kAlgNull);                                                      // symmetric
  t.u16be(quote::kAlgEcdsa).u16be(static_cast<std::uint16_t>(TpmAlg::kSha256));  // scheme
  t.u16be(quote::kEccNistP256).u16be(quote::kAlgNull);                           // curve, kdf
  t.tpm2b(xy.first(kP256Field)).tpm2b(xy.subspan(kP256Field));
  ByteWriter w;
  w.tpm2b(t.data());
  return std::move(w).take();
}

Result<Bytes> authority_name(ByteSpan authority_public) {
  WARDEN_ASSIGN(pub, quote::parse_public2b(authority_public));
  if (pub.type != quote::kAlgEcc || pub.curve != quote::kEccNistP256 ||
      pub.name_alg != static_cast<std::uint16_t>(TpmAlg::kSha256)) {
    return fail(ErrorCode::kInvalidArgument,
                "sealing authority: expected an ECC P-256 key with nameAlg SHA-256");
  }
  return quote::object_name(pub);
}

Bytes ApprovedPolicy::serialize() const {
  ByteWriter w;
  w.bytes(kMagic).u8(kVersion).tpm2b(marshal_pcr_selection(selection));
  w.u16be(static_cast<std::uint16_t>(pcr_values.size()));
  for (const auto& v : pcr_values) w.tpm2b(v);
  w.u8(counter ? 1 : 0);
  if (counter) w.u32be(counter->index).tpm2b(counter->nv_name).u64be(counter->value);
  w.tpm2b(policy_ref).tpm2b(approved_policy).tpm2b(signature);
  return std::move(w).take();
}

Result<ApprovedPolicy> ApprovedPolicy::parse(ByteSpan data) {
  if (data.size() > kMaxApprovedPolicySize) {
    return fail(ErrorCode::kLimitExceeded, "approved policy: expected at most " +
                                               std::to_string(kMaxApprovedPolicySize) +
                                               " bytes, found " + std::to_string(data.size()));
  }
  ByteReader r(data, "approved policy");
  WARDEN_ASSIGN(magic, r.bytes(kMagic.size(), "magic"));
  if (!std::equal(magic.begin(), magic.end(), kMagic.begin(), kMagic.end())) {
    return fail(r.error("magic", "expected \"WAPOL\""));
  }
  WARDEN_ASSIGN(version, r.u8("version"));
  if (version != kVersion) {
    return fail(ErrorCode::kUnsupported,
                "approved policy: expected version 1, found " + std::to_string(version));
  }
  ApprovedPolicy out;
  WARDEN_ASSIGN(sel, r.tpm2b("pcr selection", 4 + kMaxBanks * 6));
  WARDEN_ASSIGN(selection, read_selection(sel));
  out.selection = std::move(selection);
  WARDEN_ASSIGN(count, r.u16be("value count"));
  if (count != selected_count(out.selection)) {
    return fail(r.error("value count", "expected " + std::to_string(selected_count(out.selection)) +
                                           " (one per selected PCR), found " +
                                           std::to_string(count)));
  }
  for (const auto& bank : out.selection.banks) {
    for (std::size_t i = 0; i < bank.pcrs.count(); ++i) {
      WARDEN_ASSIGN(v, r.tpm2b("pcr value", hash_size(bank.alg)));
      if (v.size() != hash_size(bank.alg)) {
        return fail(r.error("pcr value", "expected " + std::to_string(hash_size(bank.alg)) +
                                             " bytes, found " + std::to_string(v.size())));
      }
      out.pcr_values.emplace_back(v.begin(), v.end());
    }
  }
  WARDEN_ASSIGN(has_counter, r.u8("has counter"));
  if (has_counter > 1) {
    return fail(r.error("has counter", "expected 0 or 1, found " + std::to_string(has_counter)));
  }
  if (has_counter == 1) {
    CounterCheck counter;
    WARDEN_ASSIGN(index, r.u32be("counter index"));
    if ((index >> 24) != 0x01) {
      return fail(r.error("counter index", "expected an NV index (0x01xxxxxx)"));
    }
    WARDEN_ASSIGN(name, r.tpm2b("counter name", 2 + kDigestSize));
    if (name.size() != 2 + kDigestSize || name[0] != 0x00 || name[1] != 0x0b) {
      return fail(r.error("counter name", "expected a 34-byte SHA-256 name"));
    }
    WARDEN_ASSIGN(value, r.u64be("counter value"));
    counter.index = index;
    counter.nv_name.assign(name.begin(), name.end());
    counter.value = value;
    out.counter = std::move(counter);
  }
  WARDEN_ASSIGN(ref, r.tpm2b("policyRef", kMaxPolicyRef));
  WARDEN_ASSIGN(approved, r.tpm2b("approvedPolicy", kDigestSize));
  if (approved.size() != kDigestSize) {
    return fail(
        r.error("approvedPolicy", "expected 32 bytes, found " + std::to_string(approved.size())));
  }
  WARDEN_ASSIGN(sig, r.tpm2b("signature", 4 + 2 * (2 + kP256Field)));
  WARDEN_TRY_STATUS(r.expect_end());
  WARDEN_TRY_STATUS(check_signature(sig));
  out.policy_ref.assign(ref.begin(), ref.end());
  out.approved_policy.assign(approved.begin(), approved.end());
  out.signature.assign(sig.begin(), sig.end());
  WARDEN_ASSIGN(expected, approved_policy_digest(out.selection, out.pcr_values, out.counter));
  if (expected != out.approved_policy) {
    return fail(ErrorCode::kMalformed,
                "approved policy: approvedPolicy is not the PolicyPCR (and PolicyNV) digest of its "
                "PCR values (and counter)");
  }
  return out;
}

Result<Bytes> ecdsa_tpmt_signature(ByteSpan raw_r_s) {
  if (raw_r_s.size() != 2 * kP256Field) {
    return fail(ErrorCode::kInvalidArgument,
                "ECDSA signature: expected 64 bytes r||s, got " + std::to_string(raw_r_s.size()));
  }
  ByteWriter w;
  w.u16be(quote::kAlgEcdsa).u16be(static_cast<std::uint16_t>(TpmAlg::kSha256));
  w.tpm2b(raw_r_s.first(kP256Field)).tpm2b(raw_r_s.subspan(kP256Field));
  return std::move(w).take();
}

Result<ApprovedPolicy> approve(const PcrSelection& selection, const PcrValues& values,
                               ByteSpan policy_ref, token::Signer& authority,
                               const std::optional<CounterCheck>& counter) {
  if (authority.alg() != token::Alg::kEs256) {
    return fail(ErrorCode::kInvalidArgument, "approve policy: expected an ES256 authority key");
  }
  if (policy_ref.size() > kMaxPolicyRef) {
    return fail(ErrorCode::kInvalidArgument, "approve policy: policyRef longer than 64 bytes");
  }
  ApprovedPolicy out;
  out.selection = selection;
  WARDEN_ASSIGN(pcrs, selected_values(selection, values));
  out.pcr_values = std::move(pcrs);
  out.counter = counter;
  WARDEN_ASSIGN(digest, approved_policy_digest(selection, out.pcr_values, counter));
  out.approved_policy = std::move(digest);
  out.policy_ref.assign(policy_ref.begin(), policy_ref.end());
  // ES256 hashes its input: signing approvedPolicy || policyRef signs aHash.
  ByteWriter message;
  message.bytes(out.approved_policy).bytes(out.policy_ref);
  WARDEN_ASSIGN(raw, authority.sign(message.data()));
  WARDEN_ASSIGN(sig, ecdsa_tpmt_signature(raw));
  out.signature = std::move(sig);
  return out;
}

Status verify_approval(const ApprovedPolicy& approval, ByteSpan authority_public) {
  WARDEN_ASSIGN(key, quote::parse_public2b(authority_public));
  WARDEN_ASSIGN(sig, quote::parse_signature(approval.signature));
  ByteWriter message;
  message.bytes(approval.approved_policy).bytes(approval.policy_ref);
  auto verified = quote::verify_signature(key, message.data(), sig);
  if (!verified) return fail(verified.error().context("approved policy"));
  return ok();
}

}  // namespace warden::attest::tpm_policy
