#include "platform/tpm/esys.h"

#include <dlfcn.h>
#include <mutex>
#include <set>
#include <utility>

#include <tss2/tss2_rc.h>

namespace warden::tpm::detail {
namespace {

// tctildr dlopens the TCTI library on every connection and dlcloses it after; reloading and
// relocating it each time was most of the CPU cost of a connection (0.35 ms of a PCR poll).
// Loading it once with RTLD_NODELETE keeps it mapped, so later dlopens only count references.
void pin_tcti_library(const std::string& tcti) {
  static std::mutex mutex;
  static std::set<std::string> pinned;
  const std::string name = tcti.substr(0, tcti.find(':'));
  if (name.empty() || name.find('/') != std::string::npos) return;
  std::lock_guard lock(mutex);
  if (!pinned.insert(name).second) return;
  // Failure is harmless: tctildr reports a missing library itself.
  ::dlopen(("libtss2-tcti-" + name + ".so.0").c_str(), RTLD_LAZY | RTLD_NODELETE);
}

}  // namespace

Error tpm_error(std::string_view operation, TSS2_RC rc) {
  const char* text = Tss2_RC_Decode(rc);
  return Error{ErrorCode::kTpm, std::string(operation) + ": " + (text ? text : "unknown error"), rc,
               0};
}

Result<Context> Context::open(const std::string& tcti) {
  Context context;
  pin_tcti_library(tcti);
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
