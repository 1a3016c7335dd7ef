// The NV counter that withdraws sealing approvals: approvals carry PolicyNV(counter == value),
// and the counter only ever increases (TPM 2.0 Part 3, 31.8 TPM2_NV_Increment, 23.9 PolicyNV).
#include <string>

#include "platform/tpm/objects.h"
#include "platform/tpm/sealing.h"
#include "platform/tpm/tpm.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::Handle;
using detail::tpm_error;

namespace {

std::string hex_index(std::uint32_t index) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 28; shift >= 0; shift -= 4) out += kHex[(index >> shift) & 0xF];
  return out;
}

Result<Handle> open_index(ESYS_CONTEXT* ctx, std::uint32_t index) {
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_TR_FromTPMPublic(ctx, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv);
  if (rc != TSS2_RC_SUCCESS) {
    Error error = tpm_error("seal counter " + hex_index(index) + ": TPM2_NV_ReadPublic", rc);
    if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) error.code = ErrorCode::kNotFound;
    return fail(std::move(error));
  }
  return Handle(ctx, nv, Handle::Kind::kClose);
}

// Takes the caller's ESYS_TR of the index: opening it again would give the same one, closed twice.
Result<SealCounter> read_counter(ESYS_CONTEXT* ctx, std::uint32_t index, const Handle& nv) {
  TPM2B_NV_PUBLIC* pub = nullptr;
  TPM2B_NAME* name = nullptr;
  TSS2_RC rc =
      Esys_NV_ReadPublic(ctx, nv.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, &name);
  EsysPtr<TPM2B_NV_PUBLIC> owned_pub(pub);
  EsysPtr<TPM2B_NAME> owned_name(name);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("seal counter: TPM2_NV_ReadPublic", rc));
  const TPMA_NV type = (pub->nvPublic.attributes & TPMA_NV_TPM2_NT_MASK) >> TPMA_NV_TPM2_NT_SHIFT;
  if (type != TPM2_NT_COUNTER || pub->nvPublic.nameAlg != TPM2_ALG_SHA256) {
    return fail(ErrorCode::kInvalidArgument,
                "seal counter " + hex_index(index) + ": expected a SHA-256 NV counter index");
  }
  TPM2B_MAX_NV_BUFFER* data = nullptr;
  rc = Esys_NV_Read(ctx, nv.get(), nv.get(), ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, 8, 0,
                    &data);
  EsysPtr<TPM2B_MAX_NV_BUFFER> owned_data(data);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("seal counter: TPM2_NV_Read", rc));
  SealCounter out;
  out.index = index;
  out.name = detail::to_bytes(name->name, name->size);
  for (std::uint16_t i = 0; i < data->size; ++i) out.value = (out.value << 8) | data->buffer[i];
  return out;
}

Status increment(ESYS_CONTEXT* ctx, ESYS_TR nv) {
  TSS2_RC rc = Esys_NV_Increment(ctx, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("seal counter: TPM2_NV_Increment", rc));
  return ok();
}

}  // namespace

namespace detail {

Status policy_counter(ESYS_CONTEXT* ctx, ESYS_TR session, const PolicyApproval::Counter& counter) {
  auto nv = open_index(ctx, counter.index);
  if (!nv) return fail(nv.error().context("unseal"));
  TPM2B_OPERAND operand{};
  operand.size = 8;
  for (int i = 0; i < 8; ++i) {
    operand.buffer[i] = static_cast<std::uint8_t>(counter.value >> (56 - 8 * i));
  }
  TSS2_RC rc = Esys_PolicyNV(ctx, nv->get(), nv->get(), session, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                             ESYS_TR_NONE, &operand, 0, TPM2_EO_EQ);
  if (rc == TPM2_RC_POLICY) {
    Error error = tpm_error("unseal: TPM2_PolicyNV", rc);
    error.code = ErrorCode::kPolicyViolation;
    error.message = "unseal: the approval was withdrawn (seal counter " + hex_index(counter.index) +
                    " is no longer " + std::to_string(counter.value) + "): " + error.message;
    return fail(std::move(error));
  }
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("unseal: TPM2_PolicyNV", rc));
  return ok();
}

}  // namespace detail

Result<SealCounter> Tpm::define_seal_counter(std::uint32_t index) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  TPM2B_AUTH auth{};
  TPM2B_NV_PUBLIC info{};
  info.nvPublic.nvIndex = index;
  info.nvPublic.nameAlg = TPM2_ALG_SHA256;
  // Anyone may increment (a denial of service at worst: approvals must be re-issued); nobody can
  // decrement, which is what makes an increment withdraw approvals.
  info.nvPublic.attributes = (TPM2_NT_COUNTER << TPMA_NV_TPM2_NT_SHIFT) | TPMA_NV_AUTHWRITE |
                             TPMA_NV_AUTHREAD | TPMA_NV_NO_DA;
  info.nvPublic.dataSize = 8;
  ESYS_TR nv = ESYS_TR_NONE;
  TSS2_RC rc = Esys_NV_DefineSpace(ctx->get(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                   ESYS_TR_NONE, &auth, &info, &nv);
  if (rc == TPM2_RC_NV_DEFINED) {
    Error error = tpm_error("seal counter: TPM2_NV_DefineSpace", rc);
    error.code = ErrorCode::kAlreadyExists;
    return fail(std::move(error));
  }
  if (rc != TSS2_RC_SUCCESS) return fail(tpm_error("seal counter: TPM2_NV_DefineSpace", rc));
  Handle handle(ctx->get(), nv, Handle::Kind::kClose);
  WARDEN_TRY_STATUS(increment(ctx->get(), nv));
  return read_counter(ctx->get(), index, handle);
}

Result<SealCounter> Tpm::read_seal_counter(std::uint32_t index) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto nv = open_index(ctx->get(), index);
  if (!nv) return fail(nv.error());
  return read_counter(ctx->get(), index, *nv);
}

Result<SealCounter> Tpm::increment_seal_counter(std::uint32_t index) const {
  auto ctx = connection_->acquire();
  if (!ctx) return fail(ctx.error());
  auto nv = open_index(ctx->get(), index);
  if (!nv) return fail(nv.error());
  WARDEN_TRY_STATUS(increment(ctx->get(), nv->get()));
  return read_counter(ctx->get(), index, *nv);
}

}  // namespace warden::tpm
