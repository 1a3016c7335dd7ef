#include "platform/tpm/esys.h"

#include <utility>

#include <tss2/tss2_rc.h>

namespace warden::tpm::detail {

Error tpm_error(std::string_view operation, TSS2_RC rc) {
  const char* text = Tss2_RC_Decode(rc);
  return Error{ErrorCode::kTpm, std::string(operation) + ": " + (text ? text : "unknown error"), rc,
               0};
}

Result<Context> Context::open(const std::string& tcti) {
  Context context;
  TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti.c_str(), &context.tcti_);
  if (rc != TSS2_RC_SUCCESS) {
    Error error = tpm_error("connect to TPM via TCTI \"" + tcti + "\"", rc);
    error.code = ErrorCode::kUnavailable;
    return fail(std::move(error));
  }
  rc = Esys_Initialize(&context.esys_, context.tcti_, nullptr);
  if (rc != TSS2_RC_SUCCESS) {
    context.esys_ = nullptr;
    Error error = tpm_error("initialise ESYS on TCTI \"" + tcti + "\"", rc);
    error.code = ErrorCode::kUnavailable;
    return fail(std::move(error));
  }
  return context;
}

Context::Context(Context&& other) noexcept
    : tcti_(std::exchange(other.tcti_, nullptr)), esys_(std::exchange(other.esys_, nullptr)) {}

Context& Context::operator=(Context&& other) noexcept {
  if (this != &other) {
    reset();
    tcti_ = std::exchange(other.tcti_, nullptr);
    esys_ = std::exchange(other.esys_, nullptr);
  }
  return *this;
}

Context::~Context() { reset(); }

void Context::reset() {
  if (esys_ != nullptr) Esys_Finalize(&esys_);
  if (tcti_ != nullptr) Tss2_TctiLdr_Finalize(&tcti_);
  esys_ = nullptr;
  tcti_ = nullptr;
}

Handle& Handle::operator=(Handle&& other) noexcept {
  if (this != &other) {
    reset();
    ctx_ = std::exchange(other.ctx_, nullptr);
    tr_ = std::exchange(other.tr_, ESYS_TR_NONE);
    kind_ = other.kind_;
  }
  return *this;
}

void Handle::reset() {
  if (ctx_ != nullptr && tr_ != ESYS_TR_NONE) {
    // Best effort: a failure here leaves at most one object the TPM reclaims at the next reset.
    if (kind_ == Kind::kFlush) {
      (void)Esys_FlushContext(ctx_, tr_);
    } else {
      (void)Esys_TR_Close(ctx_, &tr_);
    }
  }
  ctx_ = nullptr;
  tr_ = ESYS_TR_NONE;
}

}  // namespace warden::tpm::detail
