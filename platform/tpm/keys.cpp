#include <array>
#include <cstring>
#include <system_error>

#include <openssl/x509.h>
#include <tss2/tss2_mu.h>

#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/tpm/objects.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::Handle;
using detail::tpm_error;

namespace {

struct EkSlot {
  EkTemplate ek_template;
  std::uint32_t cert_index;
};
// Preference order: low range (TCG default templates) first, then the high range.
constexpr std::array<EkSlot, 5> kEkSlots{{{EkTemplate::kEccP256L2, 0x01C0000A},
                                          {EkTemplate::kRsa2048L1, 0x01C00002},
                                          {EkTemplate::kEccP256H2, 0x01C00014},
                                          {EkTemplate::kRsa2048H1, 0x01C00012},
                                          {EkTemplate::kEccP384H3, 0x01C00016}}};
constexpr std::uint32_t kChainFirst = 0x01C00100;
constexpr std::uint32_t kChainLast = 0x01C001FF;
constexpr std::uint8_t kAkBlobVersion = 1;
constexpr std::string_view kAkMagic = "WAK";

Result<std::vector<std::uint32_t>> nv_indices(ESYS_CONTEXT* ctx) {
  std::vector<std::uint32_t> out;
  std::uint32_t next = TPM2_NV_INDEX_FIRST;
  for (;;) {
    TPMS_CAPABILITY_DATA* data = nullptr;
    TPMI_YES_NO more = TPM2_NO;
    TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                    next, TPM2_MAX_CAP_HANDLES, &more, &data);
    EsysPtr<TPMS_CAPABILITY_DATA> owned(data);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_GetCapability (NV indices)", rc));
    const auto& handles = data->data.handles;
    for (std::uint32_t i = 0; i < handles.count; ++i) {
      if (handles.handle[i] > TPM2_NV_INDEX_LAST) return out;
      out.push_back(handles.handle[i]);
    }
    if (more != TPM2_YES || handles.count == 0) return out;
    next = handles.handle[handles.count - 1] + 1;
  }
}

Result<Bytes> nv_read(ESYS_CONTEXT* ctx, std::uint32_t index) {
  const std::string op = "read NV index 0x" + [&] {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08X", index);
    return std::string(buf);
  }();
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error(op + ": Esys_TR_FromTPMPublic", rc));
  Handle handle(ctx, nv, Handle::Kind::kClose);
  TPM2B_NV_PUBLIC* pub = nullptr;
  rc = Esys_NV_ReadPublic(ctx, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, nullptr);
  EsysPtr<TPM2B_NV_PUBLIC> owned_pub(pub);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error(op + ": TPM2_NV_ReadPublic", rc));
  const std::uint16_t size = pub->nvPublic.dataSize;
  Bytes out;
  out.reserve(size);
  constexpr std::uint16_t kChunk = 512;  // below every TPM's TPM_PT_NV_BUFFER_MAX
  while (out.size() < size) {
    auto n = static_cast<std::uint16_t>(std::min<std::size_t>(kChunk, size - out.size()));
    TPM2B_MAX_NV_BUFFER* data = nullptr;
    rc = Esys_NV_Read(ctx, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                      static_cast<std::uint16_t>(out.size()), &data);
    EsysPtr<TPM2B_MAX_NV_BUFFER> owned(data);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error(op + ": TPM2_NV_Read", rc));
    if (data->size == 0) return fail(ErrorCode::kTpm, op + ": TPM2_NV_Read returned no data");
    out.insert(out.end(), data->buffer, data->buffer + data->size);
  }
  return out;
}

/// Length of the DER element at the start of `der` (header + content), 0 when not a SEQUENCE.
std::size_t der_length(ByteSpan der) {
  if (der.size() < 2 || der[0] != 0x30) return 0;
  std::size_t len = der[1];
  std::size_t header = 2;
  if (len & 0x80) {
    std::size_t octets = len & 0x7f;
    if (octets == 0 || octets > 4 || der.size() < 2 + octets) return 0;
    len = 0;
    for (std::size_t i = 0; i < octets; ++i) len = (len << 8) | der[2 + i];
    header += octets;
  }
  if (header + len > der.size()) return 0;
  return header + len;
}

/// Strips the PC Client NV wrapper (10 01 00 <u16 len>) and trailing bytes.
Result<Bytes> unwrap_certificate(ByteSpan nv, std::uint32_t index) {
  if (nv.size() >= 5 && nv[0] == 0x10 && nv[1] == 0x01 && nv[2] == 0x00) nv = nv.subspan(5);
  std::size_t len = der_length(nv);
  if (len == 0) {
    return fail(ErrorCode::kMalformed, "EK certificate at NV 0x" + std::to_string(index) +
                                           ": expected a DER SEQUENCE, found " +
                                           std::to_string(nv.size()) + " bytes that are not");
  }
  return Bytes(nv.begin(), nv.begin() + static_cast<std::ptrdiff_t>(len));
}

std::vector<Bytes> split_chain(ByteSpan data) {
  std::vector<Bytes> out;
  while (!data.empty()) {
    std::size_t len = der_length(data);
    if (len == 0) break;
    out.emplace_back(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(len));
    data = data.subspan(len);
  }
  return out;
}

Result<EkSlot> find_ek_slot(const std::vector<std::uint32_t>& indices,
                            std::optional<EkTemplate> which) {
  for (const auto& slot : kEkSlots) {
    if (which && slot.ek_template != *which) continue;
    if (std::find(indices.begin(), indices.end(), slot.cert_index) != indices.end()) return slot;
  }
  if (which) {
    for (const auto& slot : kEkSlots) {
      if (slot.ek_template != *which) continue;
      char index[16];
      std::snprintf(index, sizeof index, "0x%08X", slot.cert_index);
      return fail(ErrorCode::kNotFound, std::string("endorsement key: no EK certificate at NV ") +
                                            index + " for the requested template");
    }
  }
  return fail(ErrorCode::kNotFound,
              "endorsement key: no EK certificate in NV (probed 0x01C0000A, 0x01C00002, "
              "0x01C00014, 0x01C00012, 0x01C00016)");
}

Result<EkSlot> find_ek_slot(ESYS_CONTEXT* ctx, std::optional<EkTemplate> which) {
  auto indices = nv_indices(ctx);
  if (!indices) return fail(indices.error());
  return find_ek_slot(*indices, which);
}

TPM2B_PUBLIC ak_template(AkAlgorithm algorithm) {
  TPM2B_PUBLIC t{};
  TPMT_PUBLIC& p = t.publicArea;
  p.nameAlg = TPM2_ALG_SHA256;
  p.objectAttributes =
      0x00050472;  // fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth|noDA|restricted|sign
  if (algorithm == AkAlgorithm::kRsa2048) {
    p.type = TPM2_ALG_RSA;
    auto& r = p.parameters.rsaDetail;
    r.symmetric.algorithm = TPM2_ALG_NULL;
    r.scheme.scheme = TPM2_ALG_RSASSA;
    r.scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    r.keyBits = 2048;
  } else {
    p.type = TPM2_ALG_ECC;
    auto& e = p.parameters.eccDetail;
    e.symmetric.algorithm = TPM2_ALG_NULL;
    e.scheme.scheme = TPM2_ALG_ECDSA;
    e.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    e.curveID = TPM2_ECC_NIST_P256;
    e.kdf.scheme = TPM2_ALG_NULL;
  }
  return t;
}

}  // namespace

Bytes AkBlob::name() const {
  if (public_area.size() < 4) return {};
  ByteSpan tpmt = ByteSpan(public_area).subspan(2);
  ByteWriter w;
  w.u16be(TPM2_ALG_SHA256).bytes(ossl::sha256(tpmt));
  return std::move(w).take();
}

Result<std::string> AkBlob::public_key_pem() const {
  auto der = detail::public_key_der(public_area);
  if (!der) return fail(der.error());
  auto key = ossl::public_key_from_der(*der);
  if (!key) return fail(key.error());
  return ossl::public_key_to_pem(key->get());
}

Bytes AkBlob::serialize() const {
  ByteWriter w;
  w.bytes(kAkMagic).u8(kAkBlobVersion).u8(static_cast<std::uint8_t>(parent));
  w.tpm2b(public_area).tpm2b(private_area);
  return std::move(w).take();
}

Result<AkBlob> AkBlob::parse(ByteSpan data) {
  ByteReader r(data, "AK blob");
  auto magic = r.bytes(kAkMagic.size(), "magic");
  if (!magic) return fail(magic.error());
  if (!std::equal(magic->begin(), magic->end(), kAkMagic.begin(), kAkMagic.end())) {
    return fail(ErrorCode::kMalformed, "AK blob: expected magic \"WAK\"");
  }
  auto version = r.u8("version");
  if (!version) return fail(version.error());
  if (*version != kAkBlobVersion) {
    return fail(ErrorCode::kUnsupported,
                "AK blob: expected version 1, found " + std::to_string(*version));
  }
  auto parent = r.u8("parent");
  if (!parent) return fail(parent.error());
  if (*parent > static_cast<std::uint8_t>(EkTemplate::kEccP384H3)) {
    return fail(ErrorCode::kMalformed,
                "AK blob: unknown parent template " + std::to_string(*parent));
  }
  auto pub = r.tpm2b("public");
  if (!pub) return fail(pub.error());
  auto priv = r.tpm2b("private");
  if (!priv) return fail(priv.error());
  WARDEN_TRY_STATUS(r.expect_end());
  AkBlob ak;
  ak.parent = static_cast<EkTemplate>(*parent);
  ak.public_area.assign(pub->begin(), pub->end());
  ak.private_area.assign(priv->begin(), priv->end());
  return ak;
}

Result<EkInfo> Tpm::endorsement_key(std::optional<EkTemplate> which) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto indices = nv_indices(ctx->get());
  if (!indices) return fail(indices.error().context("endorsement key"));
  auto slot = find_ek_slot(*indices, which);
  if (!slot) return fail(slot.error());

  EkInfo info;
  info.ek_template = slot->ek_template;
  info.cert_index = slot->cert_index;
  auto nv = nv_read(ctx->get(), slot->cert_index);
  if (!nv) return fail(nv.error().context("endorsement key"));
  auto cert = unwrap_certificate(*nv, slot->cert_index);
  if (!cert) return fail(cert.error());
  info.certificate = std::move(*cert);
  for (std::uint32_t index : *indices) {
    if (index < kChainFirst || index > kChainLast) continue;
    auto chain = nv_read(ctx->get(), index);
    if (!chain) return fail(chain.error().context("EK certificate chain"));
    for (auto& c : split_chain(*chain)) info.chain.push_back(std::move(c));
  }

  TPM2B_PUBLIC pub{};
  auto ek = detail::create_ek(ctx->get(), slot->ek_template, &pub);
  if (!ek) return fail(ek.error());
  ek->reset();
  auto marshalled = detail::marshal("TPM2B_PUBLIC", pub, Tss2_MU_TPM2B_PUBLIC_Marshal);
  if (!marshalled) return fail(marshalled.error());
  info.public_area = std::move(*marshalled);
  auto der = detail::public_key_der(pub.publicArea);
  if (!der) return fail(der.error().context("endorsement key"));
  info.public_key_der = std::move(*der);

  auto x509 = ossl::certificate_from_der(info.certificate);
  if (!x509) return fail(x509.error().context("EK certificate"));
  ossl::PKey cert_key(X509_get_pubkey(x509->get()));
  if (!cert_key) return fail(ossl::error("EK certificate: public key"));
  auto cert_der = ossl::public_key_to_der(cert_key.get());
  if (!cert_der) return fail(cert_der.error());
  if (*cert_der != info.public_key_der) {
    return fail(ErrorCode::kProofMismatch,
                "endorsement key: the EK created from the TCG template does not match the "
                "certificate's public key (certificate at NV index " +
                    std::to_string(slot->cert_index) + ")");
  }
  return info;
}

Result<AkBlob> Tpm::create_ak(AkAlgorithm algorithm, std::optional<EkTemplate> parent) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto slot = find_ek_slot(ctx->get(), parent);
  if (!slot) return fail(slot.error().context("create AK"));
  auto ek = detail::create_ek(ctx->get(), slot->ek_template);
  if (!ek) return fail(ek.error().context("create AK"));
  auto session = detail::ek_policy_session(ctx->get(), slot->ek_template);
  if (!session) return fail(session.error().context("create AK"));

  TPM2B_SENSITIVE_CREATE sensitive{};
  TPM2B_PUBLIC in_public = ak_template(algorithm);
  TPM2B_DATA outside{};
  TPML_PCR_SELECTION pcrs{};
  TPM2B_PRIVATE* out_private = nullptr;
  TPM2B_PUBLIC* out_public = nullptr;
  TSS2_RC rc = Esys_Create(ctx->get(), ek->get(), session->get(), ESYS_TR_NONE, ESYS_TR_NONE,
                           &sensitive, &in_public, &outside, &pcrs, &out_private, &out_public,
                           nullptr, nullptr, nullptr);
  EsysPtr<TPM2B_PRIVATE> owned_private(out_private);
  EsysPtr<TPM2B_PUBLIC> owned_public(out_public);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("create AK: TPM2_Create", rc));
  AkBlob ak;
  ak.parent = slot->ek_template;
  auto pub = detail::marshal("TPM2B_PUBLIC", *out_public, Tss2_MU_TPM2B_PUBLIC_Marshal);
  if (!pub) return fail(pub.error());
  auto priv = detail::marshal("TPM2B_PRIVATE", *out_private, Tss2_MU_TPM2B_PRIVATE_Marshal);
  if (!priv) return fail(priv.error());
  ak.public_area = std::move(*pub);
  ak.private_area = std::move(*priv);
  return ak;
}

Result<AkBlob> Tpm::load_or_create_ak(const std::filesystem::path& state_dir,
                                      AkAlgorithm algorithm) const {
  const auto path = state_dir / "ak.blob";
  std::error_code ec;
  if (std::filesystem::exists(path, ec)) {
    auto data = read_file(path, 16 << 10);
    if (!data) return fail(data.error());
    auto ak = AkBlob::parse(*data);
    if (!ak) return fail(ak.error().context(path.string()));
    return ak;
  }
  auto ak = create_ak(algorithm);
  if (!ak) return fail(ak.error());
  std::filesystem::create_directories(state_dir, ec);
  if (ec) {
    return fail(ErrorCode::kIo,
                "create state directory " + state_dir.string() + ": " + ec.message());
  }
  WARDEN_TRY_STATUS(write_file_atomic(path, ak->serialize(), 0600));
  return ak;
}

Result<SecretBytes> Tpm::activate_credential(const AkBlob& ak, ByteSpan credential_blob,
                                             ByteSpan secret) const {
  auto id_object = detail::unmarshal<TPM2B_ID_OBJECT>("TPM2B_ID_OBJECT", credential_blob,
                                                      Tss2_MU_TPM2B_ID_OBJECT_Unmarshal);
  if (!id_object) return fail(id_object.error().context("activate credential"));
  auto enc_secret = detail::unmarshal<TPM2B_ENCRYPTED_SECRET>(
      "TPM2B_ENCRYPTED_SECRET", secret, Tss2_MU_TPM2B_ENCRYPTED_SECRET_Unmarshal);
  if (!enc_secret) return fail(enc_secret.error().context("activate credential"));

  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto ak_handle = detail::load_ak(ctx->get(), ak);
  if (!ak_handle) return fail(ak_handle.error().context("activate credential"));
  auto ek = detail::create_ek(ctx->get(), ak.parent);
  if (!ek) return fail(ek.error().context("activate credential"));
  // Session 1 authorises the AK (ADMIN role, empty auth) and, salted to the EK, encrypts the
  // recovered credential in the response. Session 2 satisfies the EK's policy.
  auto hmac = detail::salted_session(ctx->get(), ek->get(), TPM2_SE_HMAC,
                                     TPMA_SESSION_ENCRYPT | TPMA_SESSION_CONTINUESESSION);
  if (!hmac) return fail(hmac.error().context("activate credential"));
  auto policy = detail::ek_policy_session(ctx->get(), ak.parent);
  if (!policy) return fail(policy.error().context("activate credential"));
  TPM2B_DIGEST* cert_info = nullptr;
  TSS2_RC rc =
      Esys_ActivateCredential(ctx->get(), ak_handle->get(), ek->get(), hmac->get(), policy->get(),
                              ESYS_TR_NONE, &*id_object, &*enc_secret, &cert_info);
  EsysPtr<TPM2B_DIGEST> owned(cert_info);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_ActivateCredential", rc));
  SecretBytes out(ByteSpan(cert_info->buffer, cert_info->size));
  OPENSSL_cleanse(cert_info->buffer, cert_info->size);
  return out;
}

Result<Quote> Tpm::quote(const AkBlob& ak, const PcrSelection& selection, ByteSpan nonce) const {
  if (nonce.size() > 64) {
    return fail(ErrorCode::kInvalidArgument,
                "quote: nonce of at most 64 bytes expected, got " + std::to_string(nonce.size()));
  }
  auto tpml = detail::to_tpml(selection);
  if (!tpml) return fail(tpml.error());
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto ak_handle = detail::load_ak(ctx->get(), ak);
  if (!ak_handle) return fail(ak_handle.error().context("quote"));
  TPM2B_DATA qualifying{};
  qualifying.size = static_cast<std::uint16_t>(nonce.size());
  if (!nonce.empty()) std::memcpy(qualifying.buffer, nonce.data(), nonce.size());
  TPMT_SIG_SCHEME scheme{};
  scheme.scheme = TPM2_ALG_NULL;
  TPM2B_ATTEST* quoted = nullptr;
  TPMT_SIGNATURE* signature = nullptr;
  TSS2_RC rc = Esys_Quote(ctx->get(), ak_handle->get(), ESYS_TR_PASSWORD, ESYS_TR_NONE,
                          ESYS_TR_NONE, &qualifying, &scheme, &*tpml, &quoted, &signature);
  EsysPtr<TPM2B_ATTEST> owned_quoted(quoted);
  EsysPtr<TPMT_SIGNATURE> owned_signature(signature);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_Quote", rc));
  Quote out;
  out.attest.assign(quoted->attestationData, quoted->attestationData + quoted->size);
  auto sig = detail::marshal_signature(*signature);
  if (!sig) return fail(sig.error());
  out.signature = std::move(*sig);
  return out;
}

}  // namespace warden::tpm
