#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include <openssl/crypto.h>

#include "platform/base/bytes.h"

namespace warden {

/// Allocates from OpenSSL's secure heap (CRYPTO_secure_malloc: mlock'd, MADV_DONTDUMP, guard
/// pages) and cleanses on free. Until a process calls CRYPTO_secure_malloc_init (wardend does, in
/// agent::init_locked_key_memory) OpenSSL falls back to the ordinary heap: still cleansed on free,
/// but swappable. A full secure heap is an out-of-memory (std::bad_alloc), never a silent
/// fallback: size the heap for the secrets in flight.
template <class T>
struct SecureAllocator {
  using value_type = T;
  SecureAllocator() = default;
  template <class U>
  explicit SecureAllocator(const SecureAllocator<U>& /*other*/) noexcept {}
  T* allocate(std::size_t n) {
    void* p = CRYPTO_secure_malloc(n * sizeof(T), __FILE__, __LINE__);
    if (p == nullptr) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) noexcept {
    CRYPTO_secure_clear_free(p, n * sizeof(T), __FILE__, __LINE__);
  }
  template <class U>
  bool operator==(const SecureAllocator<U>& /*other*/) const noexcept {
    return true;
  }
};

/// Bytes that must never be logged or written in plaintext: held in the secure heap (see
/// SecureAllocator), wiped (OPENSSL_cleanse) when destroyed, moved from, or cleared. Copying is
/// explicit (clone()) so that copies are visible in review.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(ByteSpan data) : data_(data.begin(), data.end()) {}
  explicit SecretBytes(std::size_t size) : data_(size) {}
  ~SecretBytes() { wipe(); }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  SecretBytes(SecretBytes&& other) noexcept : data_(std::move(other.data_)) { other.wipe(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      wipe();
      data_ = std::move(other.data_);
      other.wipe();
    }
    return *this;
  }

  [[nodiscard]] SecretBytes clone() const { return SecretBytes(view()); }
  [[nodiscard]] ByteSpan view() const { return {data_.data(), data_.size()}; }
  [[nodiscard]] std::uint8_t* data() { return data_.data(); }
  [[nodiscard]] std::size_t size() const { return data_.size(); }
  [[nodiscard]] bool empty() const { return data_.empty(); }
  /// Grows or shrinks (new bytes are zero); a reallocation cleanses the old block.
  void resize(std::size_t size) { data_.resize(size); }
  /// True when the bytes live in the secure heap (mlock'd unless the kernel refused; false
  /// before CRYPTO_secure_malloc_init, or when empty).
  [[nodiscard]] bool in_secure_heap() const {
    return !data_.empty() && CRYPTO_secure_allocated(data_.data()) == 1;
  }
  /// Cleanses the bytes and returns the memory (the allocator cleanses it again on free).
  void wipe() {
    if (!data_.empty()) OPENSSL_cleanse(data_.data(), data_.size());
    data_.clear();
    data_.shrink_to_fit();
  }

 private:
  std::vector<std::uint8_t, SecureAllocator<std::uint8_t>> data_;
};

}  // namespace warden
