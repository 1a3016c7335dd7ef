#pragma once

// Internal to platform/tpm: RAII ownership of ESAPI objects and the error conversion.

#include <memory>
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
