#include "platform/tpm/esys.h"

#include <dlfcn.h>
#include <mutex>
#include <set>
#include <utility>

#include <tss2/tss2_rc.h>

#include "platform/tpm/state_poller.h"

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

thread_local std::uint64_t g_transport_failures = 0;

}  // namespace

bool transport_failure(TSS2_RC rc) {
  const TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
  return layer == TSS2_ESAPI_RC_LAYER || layer == TSS2_SYS_RC_LAYER || layer == TSS2_TCTI_RC_LAYER;
}

std::uint64_t transport_failures() { return g_transport_failures; }

Error tpm_error(std::string_view operation, TSS2_RC rc) {
  if (transport_failure(rc)) ++g_transport_failures;
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

Connection::Connection(std::string tcti)
    : tcti_(std::move(tcti)), hold_(tcti_allows_held_connection(tcti_)) {}

Result<Connection::Lease> Connection::acquire() {
  std::unique_lock lock(mu_);
  bool opened = false;
  if (!context_) {
    auto context = Context::open(tcti_);
    if (!context) return fail(std::move(context).error());
    context_ = std::move(*context);
    ++opens_;
    opened = true;
  }
  ++depth_;
  ESYS_CONTEXT* esys = context_->get();
  return Lease(this, std::move(lock), esys, opened, g_transport_failures);
}

std::uint64_t Connection::opens() {
  std::lock_guard lock(mu_);
  return opens_;
}

void Connection::release(bool discard, std::uint64_t failures) {
  --depth_;
  // An outer lease on this thread may still use the context: close it when the last one ends.
  if (discard || failures != g_transport_failures) broken_ = true;
  if (depth_ == 0 && (broken_ || !hold_)) {
    context_.reset();
    broken_ = false;
  }
}

Connection::Lease::Lease(Connection* owner, std::unique_lock<std::recursive_mutex> lock,
                         ESYS_CONTEXT* esys, bool opened, std::uint64_t failures)
    : owner_(owner), lock_(std::move(lock)), esys_(esys), opened_(opened), failures_(failures) {}

Connection::Lease::Lease(Lease&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)),
      lock_(std::move(other.lock_)),
      esys_(std::exchange(other.esys_, nullptr)),
      opened_(other.opened_),
      discard_(other.discard_),
      failures_(other.failures_) {}

Connection::Lease::~Lease() {
  if (owner_ != nullptr) owner_->release(discard_, failures_);
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
