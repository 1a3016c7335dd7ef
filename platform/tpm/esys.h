#pragma once

// Internal to platform/tpm: RAII ownership of ESAPI objects and the error conversion.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::tpm::detail {

/// Error{kTpm, "<operation>: <Tss2_RC_Decode>", rc}.
Error tpm_error(std::string_view operation, TSS2_RC rc);

/// Owns an Esys_Free'd output buffer.
struct EsysFree {
  void operator()(void* p) const { Esys_Free(p); }
};
template <class T>
using EsysPtr = std::unique_ptr<T, EsysFree>;

/// One TPM connection: the TCTI and the ESYS context on it. ESYS is finalised before the TCTI.
class Context {
 public:
  /// Opens the TCTI named by `tcti` and initialises ESYS; kUnavailable when the TPM is unreachable.
  static Result<Context> open(const std::string& tcti);
  Context(Context&& other) noexcept;
  Context& operator=(Context&& other) noexcept;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

  [[nodiscard]] ESYS_CONTEXT* get() const { return esys_; }

 private:
  Context() = default;
  void reset();
  TSS2_TCTI_CONTEXT* tcti_ = nullptr;
  ESYS_CONTEXT* esys_ = nullptr;
};

/// The one connection of a Tpm and its copies: a Context opened on first use and kept across
/// operations where that blocks no other TPM user (tcti_allows_held_connection), else closed after
/// each. Every operation runs under its lock, so users on several threads never interleave
/// commands (swtpm without resource manager has 3 object slots). A transport or ESYS failure
/// during an operation (tpm_error of an ESYS, SYS or TCTI code) closes it; the next reopens.
class Connection {
 public:
  explicit Connection(std::string tcti);
  [[nodiscard]] const std::string& tcti() const { return tcti_; }
  [[nodiscard]] bool holds() const { return hold_; }

  /// The context for one operation, with the lock held. Nested leases on one thread share it.
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease();
    [[nodiscard]] ESYS_CONTEXT* get() const { return esys_; }
    /// Whether this lease opened the context (rather than reusing a held one).
    [[nodiscard]] bool opened() const { return opened_; }
    /// Closes the context when the lease ends (the caller saw its state go wrong).
    void discard() { discard_ = true; }

   private:
    friend class Connection;
    Lease(Connection* owner, std::unique_lock<std::recursive_mutex> lock, ESYS_CONTEXT* esys,
          bool opened, std::uint64_t failures);
    Connection* owner_;
    std::unique_lock<std::recursive_mutex> lock_;
    ESYS_CONTEXT* esys_;
    bool opened_;
    bool discard_ = false;
    std::uint64_t failures_;
  };

  Result<Lease> acquire();
  /// Contexts opened so far.
  [[nodiscard]] std::uint64_t opens();

 private:
  void release(bool discard, std::uint64_t failures);
  std::string tcti_;
  bool hold_;
  std::recursive_mutex mu_;  // guards everything below
  std::optional<Context> context_;
  int depth_ = 0;
  bool broken_ = false;
  std::uint64_t opens_ = 0;
};

/// Whether `rc` says the connection or ESYS's state may be broken (not a TPM response code).
bool transport_failure(TSS2_RC rc);
/// tpm_error()s of transport failures on this thread so far.
std::uint64_t transport_failures();

/// An ESYS_TR: transient objects and sessions are flushed, others (persistent, NV) closed.
class Handle {
 public:
  enum class Kind { kFlush, kClose };
  Handle() = default;
  Handle(ESYS_CONTEXT* ctx, ESYS_TR tr, Kind kind) : ctx_(ctx), tr_(tr), kind_(kind) {}
  Handle(Handle&& other) noexcept { *this = std::move(other); }
  Handle& operator=(Handle&& other) noexcept;
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  ~Handle() { reset(); }

  [[nodiscard]] ESYS_TR get() const { return tr_; }
  void reset();

 private:
  ESYS_CONTEXT* ctx_ = nullptr;
  ESYS_TR tr_ = ESYS_TR_NONE;
  Kind kind_ = Kind::kFlush;
};

inline Bytes to_bytes(const std::uint8_t* data, std::size_t size) {
  return Bytes(data, data + size);
}

/// Marshals a TSS structure with its Tss2_MU_*_Marshal function.
template <class T, class F>
Result<Bytes> marshal(std::string_view what, const T& value, F marshal_fn) {
  std::uint8_t buffer[4096];
  size_t offset = 0;
  if (TSS2_RC rc = marshal_fn(&value, buffer, sizeof buffer, &offset); rc != TSS2_RC_SUCCESS) {
    return fail(tpm_error(std::string("marshal ") + std::string(what), rc));
  }
  return Bytes(buffer, buffer + offset);
}

/// Unmarshals a TSS structure; the whole input must be consumed.
template <class T, class F>
Result<T> unmarshal(std::string_view what, ByteSpan data, F unmarshal_fn) {
  T value{};
  size_t offset = 0;
  if (TSS2_RC rc = unmarshal_fn(data.data(), data.size(), &offset, &value); rc != TSS2_RC_SUCCESS) {
    return fail(tpm_error(std::string("unmarshal ") + std::string(what), rc));
  }
  if (offset != data.size()) {
    return fail(ErrorCode::kMalformed, "unmarshal " + std::string(what) + ": expected " +
                                           std::to_string(data.size()) + " bytes, consumed " +
                                           std::to_string(offset));
  }
  return value;
}

}  // namespace warden::tpm::detail
