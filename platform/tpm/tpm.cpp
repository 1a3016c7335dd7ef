#include "platform/tpm/tpm.h"

#include <algorithm>
#include <cstring>

#include "platform/tpm/esys.h"
#include "platform/tpm/objects.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::tpm_error;

namespace {

Result<EsysPtr<TPMS_CAPABILITY_DATA>> get_capability(ESYS_CONTEXT* ctx, TPM2_CAP capability,
                                                     std::uint32_t property, std::uint32_t count) {
  TPMS_CAPABILITY_DATA* data = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  TSS2_RC rc = Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, capability,
                                  property, count, &more, &data);
  EsysPtr<TPMS_CAPABILITY_DATA> owned(data);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_GetCapability", rc));
  return owned;
}

std::string chars_of(std::uint32_t value) {
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8) {
    auto c = static_cast<char>((value >> shift) & 0xff);
    if (c != '\0') out.push_back(c);
  }
  return out;
}

}  // namespace

Tpm::Tpm(std::string tcti) : connection_(std::make_shared<detail::Connection>(std::move(tcti))) {}

const std::string& Tpm::tcti() const { return connection_->tcti(); }

std::uint64_t Tpm::connections_opened() const { return connection_->opens(); }

Status Tpm::probe() const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto cap = get_capability(ctx->get(), TPM2_CAP_TPM_PROPERTIES, TPM2_PT_MANUFACTURER, 1);
  if (!cap) return fail(cap.error());
  return ok();
}

Result<std::size_t> Tpm::flush_leftover_objects() const {
  const std::string& tcti = connection_->tcti();
  if (tcti.rfind("tabrmd", 0) == 0 || tcti.find("/dev/tpmrm") != std::string::npos) return 0;
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto cap = get_capability(ctx->get(), TPM2_CAP_HANDLES, TPM2_HR_TRANSIENT, TPM2_MAX_CAP_HANDLES);
  if (!cap) return fail(cap.error());
  const TPML_HANDLE& handles = (*cap)->data.handles;
  std::size_t flushed = 0;
  for (std::uint32_t i = 0; i < handles.count; ++i) {
    ESYS_TR object = ESYS_TR_NONE;
    TSS2_RC rc = Esys_TR_FromTPMPublic(ctx->get(), handles.handle[i], ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &object);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("Esys_TR_FromTPMPublic (transient)", rc));
    rc = Esys_FlushContext(ctx->get(), object);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_FlushContext (transient)", rc));
    ++flushed;
  }
  return flushed;
}

Result<TpmInfo> Tpm::info() const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  TpmInfo info;
  auto props =
      get_capability(ctx->get(), TPM2_CAP_TPM_PROPERTIES, TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES);
  if (!props) return fail(props.error());
  const TPML_TAGGED_TPM_PROPERTY& list = (*props)->data.tpmProperties;
  std::uint32_t fw1 = 0;
  std::uint32_t fw2 = 0;
  for (std::uint32_t i = 0; i < list.count; ++i) {
    const auto& p = list.tpmProperty[i];
    switch (p.property) {
      case TPM2_PT_MANUFACTURER:
        info.manufacturer = chars_of(p.value);
        break;
      case TPM2_PT_VENDOR_STRING_1:
      case TPM2_PT_VENDOR_STRING_2:
      case TPM2_PT_VENDOR_STRING_3:
      case TPM2_PT_VENDOR_STRING_4:
        info.vendor += chars_of(p.value);
        break;
      case TPM2_PT_FIRMWARE_VERSION_1:
        fw1 = p.value;
        break;
      case TPM2_PT_FIRMWARE_VERSION_2:
        fw2 = p.value;
        break;
      default:
        break;
    }
  }
  info.firmware_version = (std::uint64_t{fw1} << 32) | fw2;

  auto pcrs = get_capability(ctx->get(), TPM2_CAP_PCRS, 0, TPM2_NUM_PCR_BANKS);
  if (!pcrs) return fail(pcrs.error());
  const TPML_PCR_SELECTION& banks = (*pcrs)->data.assignedPCR;
  for (std::uint32_t i = 0; i < banks.count; ++i) {
    const auto& bank = banks.pcrSelections[i];
    bool any = std::any_of(bank.pcrSelect, bank.pcrSelect + bank.sizeofSelect,
                           [](std::uint8_t b) { return b != 0; });
    if (auto alg = hash_from_tpm_id(bank.hash); alg && any) info.pcr_banks.push_back(*alg);
  }

  auto algs = get_capability(ctx->get(), TPM2_CAP_ALGS, TPM2_ALG_FIRST, TPM2_MAX_CAP_ALGS);
  if (!algs) return fail(algs.error());
  for (std::uint32_t i = 0; i < (*algs)->data.algorithms.count; ++i) {
    info.algorithms.push_back((*algs)->data.algorithms.algProperties[i].alg);
  }
  auto curves =
      get_capability(ctx->get(), TPM2_CAP_ECC_CURVES, TPM2_ECC_NIST_P192, TPM2_MAX_ECC_CURVES);
  if (!curves) return fail(curves.error());
  for (std::uint32_t i = 0; i < (*curves)->data.eccCurves.count; ++i) {
    info.curves.push_back((*curves)->data.eccCurves.eccCurves[i]);
  }
  return info;
}

Result<Bytes> Tpm::random(std::size_t count) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  Bytes out;
  out.reserve(count);
  while (out.size() < count) {
    auto want = static_cast<std::uint16_t>(std::min<std::size_t>(count - out.size(), 32));
    TPM2B_DIGEST* bytes = nullptr;
    TSS2_RC rc = Esys_GetRandom(ctx->get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, want, &bytes);
    EsysPtr<TPM2B_DIGEST> owned(bytes);
    if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_GetRandom", rc));
    if (owned->size == 0) return fail(ErrorCode::kTpm, "TPM2_GetRandom: TPM returned no bytes");
    out.insert(out.end(), owned->buffer, owned->buffer + owned->size);
  }
  out.resize(count);
  return out;
}

Result<PcrSelection> Tpm::active_pcrs() const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto pcrs = get_capability(ctx->get(), TPM2_CAP_PCRS, 0, TPM2_NUM_PCR_BANKS);
  if (!pcrs) return fail(pcrs.error());
  PcrSelection selection;
  const TPML_PCR_SELECTION& banks = (*pcrs)->data.assignedPCR;
  for (std::uint32_t i = 0; i < banks.count; ++i) {
    const auto& bank = banks.pcrSelections[i];
    auto alg = hash_from_tpm_id(bank.hash);
    if (!alg) continue;
    PcrBank out{*alg, {}};
    for (std::size_t pcr = 0; pcr < kPcrCount && pcr / 8 < bank.sizeofSelect; ++pcr) {
      if ((bank.pcrSelect[pcr / 8] >> (pcr % 8)) & 1) out.pcrs.set(pcr);
    }
    if (out.pcrs.any()) selection.banks.push_back(out);
  }
  return selection;
}

Result<std::vector<PcrValue>> Tpm::read_pcrs(const PcrSelection& selection) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  return detail::read_pcrs(ctx->get(), selection);
}

Result<ClockInfo> Tpm::read_clock() const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  return detail::read_clock(ctx->get());
}

Result<PcrSnapshot> Tpm::snapshot(const PcrSelection& selection) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto pcrs = detail::read_pcrs_counted(ctx->get(), selection);
  if (!pcrs) return fail(std::move(pcrs).error());
  auto clock = detail::read_clock(ctx->get());
  if (!clock) return fail(std::move(clock).error());
  return PcrSnapshot{std::move(pcrs->values), *clock, pcrs->update_counter};
}

Status Tpm::extend_pcr(unsigned index, TpmAlg alg, ByteSpan digest) const {
  if (index >= kPcrCount) {
    return fail(ErrorCode::kInvalidArgument,
                "extend PCR: index " + std::to_string(index) + " out of range 0..23");
  }
  if (digest.size() != hash_size(alg)) {
    return fail(ErrorCode::kInvalidArgument,
                "extend PCR: expected a " + std::to_string(hash_size(alg)) + "-byte " +
                    std::string(hash_name(alg)) + " digest, got " + std::to_string(digest.size()));
  }
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  TPML_DIGEST_VALUES values{};
  values.count = 1;
  values.digests[0].hashAlg = static_cast<TPMI_ALG_HASH>(alg);
  std::memcpy(&values.digests[0].digest, digest.data(), digest.size());
  TSS2_RC rc = Esys_PCR_Extend(ctx->get(), ESYS_TR_PCR0 + index, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                               ESYS_TR_NONE, &values);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("TPM2_PCR_Extend", rc));
  return ok();
}

}  // namespace warden::tpm
