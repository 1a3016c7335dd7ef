#include "platform/tpm/objects.h"

#include <algorithm>
#include <cstring>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::tpm::detail {

namespace {

constexpr TPMA_OBJECT kEkLowAttributes = 0x000300B2;
constexpr TPMA_OBJECT kEkHighAttributes = 0x000300F2;
constexpr const char* kPolicyA256 =
    "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa";
constexpr const char* kPolicyB256 =
    "ca3d0a99a2b93906f7a3342414efcfb3a385d44cd1fd459089d19b5071c0b7a0";
constexpr const char* kPolicyC256 =
    "3767e2edd43ff45a3a7e1eaefcef78643dca964632e7aad82c673a30d8633fde";
constexpr const char* kPolicyA384 =
    "8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db"
    "53";
constexpr const char* kPolicyB384 =
    "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419cacb47ba09699646150f9fc000f3f80e"
    "12";
constexpr const char* kPolicyC384 =
    "d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d1"
    "65";

TPM2B_DIGEST digest_of(const char* hex) {
  TPM2B_DIGEST out{};
  Bytes bytes = hex_decode(hex).value();
  out.size = static_cast<std::uint16_t>(bytes.size());
  std::memcpy(out.buffer, bytes.data(), bytes.size());
  return out;
}

bool is_policy_b(EkTemplate which) {
  return which == EkTemplate::kRsa2048H1 || which == EkTemplate::kEccP256H2 ||
         which == EkTemplate::kEccP384H3;
}

TPMI_ALG_HASH ek_name_alg(EkTemplate which) {
  return which == EkTemplate::kEccP384H3 ? TPM2_ALG_SHA384 : TPM2_ALG_SHA256;
}

}  // namespace

Result<TPML_PCR_SELECTION> to_tpml(const PcrSelection& selection) {
  TPML_PCR_SELECTION out{};
  if (selection.banks.size() > TPM2_NUM_PCR_BANKS) {
    return fail(ErrorCode::kInvalidArgument, "PCR selection: too many banks");
  }
  for (const auto& bank : selection.banks) {
    auto& s = out.pcrSelections[out.count++];
    s.hash = static_cast<TPMI_ALG_HASH>(bank.alg);
    s.sizeofSelect = 3;
    for (std::size_t pcr = 0; pcr < kPcrCount; ++pcr) {
      if (bank.pcrs.test(pcr)) s.pcrSelect[pcr / 8] |= static_cast<std::uint8_t>(1U << (pcr % 8));
    }
  }
  return out;
}

PcrSelection from_tpml(const TPML_PCR_SELECTION& tpml) {
  PcrSelection out;
  for (std::uint32_t i = 0; i < tpml.count && i < TPM2_NUM_PCR_BANKS; ++i) {
    const auto& s = tpml.pcrSelections[i];
    auto alg = hash_from_tpm_id(s.hash);
    if (!alg) continue;
    PcrBank bank{*alg, {}};
    for (std::size_t pcr = 0; pcr < kPcrCount && pcr / 8 < s.sizeofSelect; ++pcr) {
      if ((s.pcrSelect[pcr / 8] >> (pcr % 8)) & 1) bank.pcrs.set(pcr);
    }
    out.banks.push_back(bank);
  }
  return out;
}

Result<PcrRead> read_pcrs_counted(ESYS_CONTEXT* ctx, const PcrSelection& selection) {
  PcrRead read;
  std::vector<PcrValue>& out = read.values;
  for (const auto& bank : selection.banks) {
    // One PCR per bank at a time would be slow; ask for the remaining PCRs of the bank and take
    // what the TPM returns (≤ 8 digests), then continue with what it left out.
    std::bitset<kPcrCount> remaining = bank.pcrs;
    while (remaining.any()) {
      TPML_PCR_SELECTION in{};
      auto tpml = to_tpml(PcrSelection{{PcrBank{bank.alg, remaining}}});
      if (!tpml) return fail(tpml.error());
      in = *tpml;
      std::uint32_t counter = 0;
      TPML_PCR_SELECTION* selected = nullptr;
      TPML_DIGEST* values = nullptr;
      TSS2_RC rc = Esys_PCR_Read(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &in, &counter,
                                 &selected, &values);
      EsysPtr<TPML_PCR_SELECTION> owned_selected(selected);
      EsysPtr<TPML_DIGEST> owned_values(values);
      ++read.commands;
      if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PCR_Read", rc));
      if (read.commands == 1) read.update_counter = counter;
      PcrSelection got = from_tpml(*selected);
      std::bitset<kPcrCount> got_pcrs;
      for (const auto& b : got.banks) {
        if (b.alg == bank.alg) got_pcrs |= b.pcrs;
      }
      got_pcrs &= remaining;
      if (got_pcrs.none()) {
        return fail(ErrorCode::kTpm, "TPM2_PCR_Read: bank " + std::string(hash_name(bank.alg)) +
                                         " is not active (no PCR of " +
                                         PcrSelection{{PcrBank{bank.alg, remaining}}}.to_string() +
                                         " returned)");
      }
      std::uint32_t next = 0;
      for (std::size_t pcr = 0; pcr < kPcrCount; ++pcr) {
        if (!got_pcrs.test(pcr)) continue;
        if (next >= values->count) {
          return fail(ErrorCode::kTpm, "TPM2_PCR_Read: fewer digests than selected PCRs");
        }
        const auto& d = values->digests[next++];
        out.push_back(
            PcrValue{bank.alg, static_cast<unsigned>(pcr), Bytes(d.buffer, d.buffer + d.size)});
      }
      remaining &= ~got_pcrs;
    }
  }
  return read;
}

Result<std::vector<PcrValue>> read_pcrs(ESYS_CONTEXT* ctx, const PcrSelection& selection) {
  auto read = read_pcrs_counted(ctx, selection);
  if (!read) return fail(std::move(read).error());
  return std::move(read->values);
}

Result<ClockInfo> read_clock(ESYS_CONTEXT* ctx) {
  TPMS_TIME_INFO* info = nullptr;
  TSS2_RC rc = Esys_ReadClock(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &info);
  EsysPtr<TPMS_TIME_INFO> owned(info);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_ReadClock", rc));
  return ClockInfo{info->time, info->clockInfo.clock, info->clockInfo.resetCount,
                   info->clockInfo.restartCount, info->clockInfo.safe == TPM2_YES};
}

TPM2B_PUBLIC ek_template(EkTemplate which) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  const bool high = is_policy_b(which);
  p.nameAlg = ek_name_alg(which);
  p.objectAttributes = high ? kEkHighAttributes : kEkLowAttributes;
  p.authPolicy = digest_of(which == EkTemplate::kEccP384H3 ? kPolicyB384
                           : high                          ? kPolicyB256
                                                           : kPolicyA256);
  const bool rsa = which == EkTemplate::kRsa2048L1 || which == EkTemplate::kRsa2048H1;
  if (rsa) {
    p.type = TPM2_ALG_RSA;
    auto& r = p.parameters.rsaDetail;
    r.symmetric.algorithm = TPM2_ALG_AES;
    r.symmetric.keyBits.aes = 128;
    r.symmetric.mode.aes = TPM2_ALG_CFB;
    r.scheme.scheme = TPM2_ALG_NULL;
    r.keyBits = 2048;
    r.exponent = 0;
    p.unique.rsa.size = high ? 0 : 256;
  } else {
    p.type = TPM2_ALG_ECC;
    auto& e = p.parameters.eccDetail;
    const bool p384 = which == EkTemplate::kEccP384H3;
    e.symmetric.algorithm = TPM2_ALG_AES;
    e.symmetric.keyBits.aes = p384 ? 256 : 128;
    e.symmetric.mode.aes = TPM2_ALG_CFB;
    e.scheme.scheme = TPM2_ALG_NULL;
    e.curveID = p384 ? TPM2_ECC_NIST_P384 : TPM2_ECC_NIST_P256;
    e.kdf.scheme = TPM2_ALG_NULL;
    p.unique.ecc.x.size = high ? 0 : 32;
    p.unique.ecc.y.size = high ? 0 : 32;
  }
  return t;
}

TPM2B_PUBLIC srk_template() {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.type = TPM2_ALG_ECC;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes =
      0x00030472;  // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|decrypt
  auto& e = p.parameters.eccDetail;
  e.symmetric.algorithm = TPM2_ALG_AES;
  e.symmetric.keyBits.aes = 128;
  e.symmetric.mode.aes = TPM2_ALG_CFB;
  e.scheme.scheme = TPM2_ALG_NULL;
  e.curveID = TPM2_ECC_NIST_P256;
  e.kdf.scheme = TPM2_ALG_NULL;
  p.unique.ecc.x.size = 32;
  p.unique.ecc.y.size = 32;
  return t;
}

Result<Handle> create_primary(ESYS_CONTEXT* ctx, ESYS_TR hierarchy, const TPM2B_PUBLIC& in_public,
                              TPM2B_PUBLIC* public_out) {
  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  ESYS_TR handle = ESYS_TR_NONE;
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc = Esys_CreatePrimary(ctx, hierarchy, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                  &sensitive, &in_public, &outside, &pcrs, &handle, &out_public,
                                  nullptr, nullptr, nullptr);
  EsysPtr<TPM2B_PUBLIC> owned(out_public);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_CreatePrimary", rc));
  if (public_out != nullptr) *public_out = *out_public;
  return Handle(ctx, handle, Handle::Kind::kFlush);
}

Result<Handle> create_ek(ESYS_CONTEXT* ctx, EkTemplate which, TPM2B_PUBLIC* public_out) {
  auto ek = create_primary(ctx, ESYS_TR_RH_ENDORSEMENT, ek_template(which), public_out);
  if (!ek) return fail(ek.error().context("create EK"));
  return ek;
}

Result<Handle> create_srk(ESYS_CONTEXT* ctx) {
  auto srk = create_primary(ctx, ESYS_TR_RH_OWNER, srk_template(), nullptr);
  if (!srk) return fail(srk.error().context("create SRK"));
  return srk;
}

Result<Handle> salted_session(ESYS_CONTEXT* ctx, ESYS_TR salt_key, TPM2_SE type,
                              TPMA_SESSION attributes) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_AES;
  sym.keyBits.aes = 128;
  sym.mode.aes = TPM2_ALG_CFB;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(ctx, salt_key, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, type, &sym, TPM2_ALG_SHA256, &session);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_StartAuthSession", rc));
  Handle owned(ctx, session, Handle::Kind::kFlush);
  rc = Esys_TRSess_SetAttributes(ctx, session, attributes, 0xff);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("set session attributes", rc));
  return owned;
}

Result<Handle> ek_policy_session(ESYS_CONTEXT* ctx, EkTemplate which) {
  TPMT_SYM_DEF sym{};
  sym.algorithm = TPM2_ALG_NULL;
  ESYS_TR session = ESYS_TR_NONE;
  TSS2_RC rc = Esys_StartAuthSession(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                     ESYS_TR_NONE, nullptr, TPM2_SE_POLICY, &sym,
                                     ek_name_alg(which), &session);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_StartAuthSession (EK policy)", rc));
  Handle owned(ctx, session, Handle::Kind::kFlush);
  rc = Esys_PolicySecret(ctx, ESYS_TR_RH_ENDORSEMENT, session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                         ESYS_TR_NONE, nullptr, nullptr, nullptr, 0, nullptr, nullptr);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicySecret (endorsement)", rc));
  if (is_policy_b(which)) {
    const bool sha384 = ek_name_alg(which) == TPM2_ALG_SHA384;
    TPML_DIGEST branches{};
    branches.count = 2;
    branches.digests[0] = digest_of(sha384 ? kPolicyA384 : kPolicyA256);
    branches.digests[1] = digest_of(sha384 ? kPolicyC384 : kPolicyC256);
    rc = Esys_PolicyOR(ctx, session, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &branches);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PolicyOR (EK PolicyB)", rc));
  }
  return owned;
}

Result<Handle> load(ESYS_CONTEXT* ctx, ESYS_TR parent, ESYS_TR session, ByteSpan public_area,
                    ByteSpan private_area) {
  auto pub = unmarshal<TPM2B_PUBLIC>("TPM2B_PUBLIC", public_area, Tss2_MU_TPM2B_PUBLIC_Unmarshal);
  if (!pub) return fail(pub.error());
  auto priv =
      unmarshal<TPM2B_PRIVATE>("TPM2B_PRIVATE", private_area, Tss2_MU_TPM2B_PRIVATE_Unmarshal);
  if (!priv) return fail(priv.error());
  ESYS_TR handle = ESYS_TR_NONE;
  TSS2_RC rc = Esys_Load(ctx, parent, session, ESYS_TR_NONE, ESYS_TR_NONE, &*priv, &*pub, &handle);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_Load", rc));
  return Handle(ctx, handle, Handle::Kind::kFlush);
}

Result<Handle> load_ak(ESYS_CONTEXT* ctx, const AkBlob& ak) {
  auto ek = create_ek(ctx, ak.parent);
  if (!ek) return fail(ek.error().context("load AK"));
  auto session = ek_policy_session(ctx, ak.parent);
  if (!session) return fail(session.error().context("load AK"));
  auto handle = load(ctx, ek->get(), session->get(), ak.public_area, ak.private_area);
  if (!handle) return fail(handle.error().context("load AK"));
  return handle;  // the EK and the session are flushed here; the loaded AK stays.
}

Result<Bytes> public_key_der(const TPMT_PUBLIC& pub) {
  ossl::ParamBld bld(OSSL_PARAM_BLD_new());
  if (!bld) return fail(ossl::error("public key: OSSL_PARAM_BLD_new"));
  const char* type = nullptr;
  ossl::Bn n;
  ossl::Bn e;
  Bytes point;
  if (pub.type == TPM2_ALG_RSA) {
    type = "RSA";
    const auto& mod = pub.unique.rsa;
    n.reset(BN_bin2bn(mod.buffer, mod.size, nullptr));
    std::uint32_t exponent =
        pub.parameters.rsaDetail.exponent == 0 ? 65537U : pub.parameters.rsaDetail.exponent;
    e.reset(BN_new());
    if (!n || !e || BN_set_word(e.get(), exponent) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, e.get()) != 1) {
      return fail(ossl::error("public key: RSA parameters"));
    }
  } else if (pub.type == TPM2_ALG_ECC) {
    type = "EC";
    const char* group = nullptr;
    std::size_t field = 0;
    switch (pub.parameters.eccDetail.curveID) {
      case TPM2_ECC_NIST_P256:
        group = "P-256";
        field = 32;
        break;
      case TPM2_ECC_NIST_P384:
        group = "P-384";
        field = 48;
        break;
      default:
        return fail(ErrorCode::kUnsupported, "public key: unsupported ECC curve " +
                                                 std::to_string(pub.parameters.eccDetail.curveID));
    }
    const auto& x = pub.unique.ecc.x;
    const auto& y = pub.unique.ecc.y;
    if (x.size > field || y.size > field) {
      return fail(ErrorCode::kMalformed, "public key: ECC coordinate larger than the curve");
    }
    point.assign(1 + 2 * field, 0);
    point[0] = 0x04;
    std::memcpy(point.data() + 1 + field - x.size, x.buffer, x.size);
    std::memcpy(point.data() + 1 + 2 * field - y.size, y.buffer, y.size);
    if (OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
      return fail(ossl::error("public key: EC parameters"));
    }
  } else {
    return fail(ErrorCode::kUnsupported,
                "public key: unsupported key type " + std::to_string(pub.type));
  }
  ossl::Params params(OSSL_PARAM_BLD_to_param(bld.get()));
  ossl::PKeyCtx pctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!params || !pctx || EVP_PKEY_fromdata_init(pctx.get()) != 1 ||
      EVP_PKEY_fromdata(pctx.get(), &raw, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    return fail(ossl::error("public key: EVP_PKEY_fromdata"));
  }
  ossl::PKey key(raw);
  return ossl::public_key_to_der(key.get());
}

Result<Bytes> public_key_der(ByteSpan marshalled_tpm2b_public) {
  auto pub = unmarshal<TPM2B_PUBLIC>("TPM2B_PUBLIC", marshalled_tpm2b_public,
                                     Tss2_MU_TPM2B_PUBLIC_Unmarshal);
  if (!pub) return fail(pub.error());
  return public_key_der(pub->publicArea);
}

Result<Bytes> marshal_signature(const TPMT_SIGNATURE& signature) {
  return marshal("TPMT_SIGNATURE", signature, Tss2_MU_TPMT_SIGNATURE_Marshal);
}

}  // namespace warden::tpm::detail
