#pragma once

#include <cstdint>
#include <vector>

#include <openssl/crypto.h>

#include "platform/base/bytes.h"

namespace warden {

/// Bytes that must never be logged or written in plaintext: wiped (OPENSSL_cleanse) when destroyed,
/// moved from, or cleared. Copying is explicit (clone()) so that copies are visible in review.
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
  [[nodiscard]] ByteSpan view() const { return data_; }
  [[nodiscard]] std::uint8_t* data() { return data_.data(); }
  [[nodiscard]] std::size_t size() const { return data_.size(); }
  [[nodiscard]] bool empty() const { return data_.empty(); }
  void wipe() {
    if (!data_.empty()) OPENSSL_cleanse(data_.data(), data_.size());
    data_.clear();
  }

 private:
  std::vector<std::uint8_t> data_;
};

}  // namespace warden
