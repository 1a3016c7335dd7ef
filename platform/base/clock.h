#pragma once

#include <chrono>
#include <cstdint>
#include <span>

namespace warden {

/// Wall-clock time, passed in so that verification is deterministic in tests.
class Clock {
 public:
  virtual ~Clock() = default;
  [[nodiscard]] virtual std::chrono::system_clock::time_point now() const = 0;
  /// Seconds since the Unix epoch.
  [[nodiscard]] std::int64_t unix_now() const {
    return std::chrono::duration_cast<std::chrono::seconds>(now().time_since_epoch()).count();
  }
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::now();
  }
};

/// A clock that tests set and advance.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t unix_seconds = 1'700'000'000)
      : now_(std::chrono::seconds(unix_seconds)) {}
  [[nodiscard]] std::chrono::system_clock::time_point now() const override { return now_; }
  void set(std::int64_t unix_seconds) {
    now_ = std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds));
  }
  void advance(std::chrono::system_clock::duration d) { now_ += d; }

 private:
  std::chrono::system_clock::time_point now_;
};

/// Cryptographically secure random bytes, passed in so tests can be deterministic.
class Random {
 public:
  virtual ~Random() = default;
  virtual void fill(std::span<std::uint8_t> out) = 0;
};

/// OpenSSL's DRBG; aborts if it cannot be seeded (nothing safe can continue without randomness).
class SystemRandom final : public Random {
 public:
  void fill(std::span<std::uint8_t> out) override;
};

}  // namespace warden
