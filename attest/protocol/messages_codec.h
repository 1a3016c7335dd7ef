#pragma once

// Internal to attest/protocol: pieces the encoders and decoders of every message family use.

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "attest/protocol/fields.h"
#include "attest/protocol/limits.h"
#include "platform/base/cbor.h"
#include "platform/base/error.h"

// Assigns the value of a Result expression to a new variable or returns its error.
#define PROTO_TRY(var, expr)                                                   \
  auto var##_result_ = (expr);                                                 \
  if (!var##_result_) return ::warden::fail(std::move(var##_result_).error()); \
  auto var = std::move(*var##_result_)

namespace warden::protocol::detail {

inline constexpr std::uint64_t kU64Max = ~std::uint64_t{0};
inline constexpr std::array kDeviceIdFields{Field{1, "device_id"}};

inline cbor::Limits body_limits(std::size_t max_input, std::size_t max_items = 256) {
  return cbor::Limits{max_input, max_items, 6};
}

/// A required, non-empty identifier.
Result<std::string> id_text(const MapReader& r, std::int64_t key);

}  // namespace warden::protocol::detail

// The vocabulary of the message-family files (only they include this header).
namespace warden::protocol {
using cbor::Value;
using detail::body_limits;
using detail::Field;
using detail::id_text;
using detail::kDeviceIdFields;
using detail::kU64Max;
using detail::MapReader;
using detail::MapWriter;
namespace lim = limits;
}  // namespace warden::protocol
