#include "issuer/nonce.h"

#include <fmt/format.h>

#include "platform/base/openssl.h"

namespace warden::issuer {
namespace {
constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kPrefix = 16;  // version + random + expiry
constexpr std::size_t kMac = 16;
}  // namespace

Bytes NonceIssuer::mac(ByteSpan prefix, std::string_view device_id) const {
  ByteWriter w;
  w.bytes(prefix).bytes(device_id);
  auto full = ossl::hmac(ossl::Hash::kSha256, key_.view(), w.data());
  if (!full) std::abort();  // HMAC-SHA256 over memory only fails on OOM
  full->resize(kMac);
  return std::move(*full);
}

Bytes NonceIssuer::mint(std::string_view device_id) const {
  Bytes out(kSize);
  out[0] = kVersion;
  random_.fill(std::span(out).subspan(1, 11));
  auto expiry = static_cast<std::uint32_t>(clock_.unix_now() + ttl_);
  for (int i = 0; i < 4; ++i)
    out[12 + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(expiry >> (24 - 8 * i));
  Bytes tag = mac(ByteSpan(out).first(kPrefix), device_id);
  std::copy(tag.begin(), tag.end(), out.begin() + kPrefix);
  return out;
}

std::int64_t NonceIssuer::expiry(ByteSpan nonce) {
  if (nonce.size() != kSize) return 0;
  std::uint32_t v = 0;
  for (std::size_t i = 12; i < 16; ++i) v = (v << 8) | nonce[i];
  return v;
}

Status NonceIssuer::check(ByteSpan nonce, std::string_view device_id) const {
  if (nonce.size() != kSize || nonce[0] != kVersion) {
    return fail(ErrorCode::kMalformed,
                fmt::format("nonce: expected {} bytes of version {}, got {} bytes", kSize, kVersion,
                            nonce.size()));
  }
  Bytes expected = mac(nonce.first(kPrefix), device_id);
  if (!ossl::equal_ct(expected, nonce.subspan(kPrefix))) {
    return fail(ErrorCode::kBadSignature, "nonce: not issued by this issuer for this device");
  }
  if (clock_.unix_now() > expiry(nonce)) {
    return fail(ErrorCode::kExpired,
                fmt::format("nonce: expired at {} (now {})", expiry(nonce), clock_.unix_now()));
  }
  return ok();
}

}  // namespace warden::issuer
