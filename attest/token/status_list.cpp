#include "attest/token/status_list.h"

#include <zlib.h>

#include "platform/base/encoding.h"

namespace warden::token {
namespace {

bool valid_bits(unsigned bits) { return bits == 1 || bits == 2 || bits == 4 || bits == 8; }

constexpr std::int64_t kStatusListKey = 65533, kTtlKey = 65534;
constexpr std::string_view kCwtTyp = "application/statuslist+cwt";

Result<StatusList> list_from(unsigned bits, ByteSpan lst) {
  return StatusList::from_compressed(bits, lst);
}

}  // namespace

Result<StatusList> StatusList::create(unsigned bits, std::size_t size) {
  if (!valid_bits(bits))
    return fail(ErrorCode::kInvalidArgument, "status list: bits must be 1, 2, 4 or 8");
  return StatusList(bits, Bytes((size * bits + 7) / 8));
}

Result<StatusList> StatusList::from_compressed(unsigned bits, ByteSpan zlib,
                                               std::size_t max_bytes) {
  if (!valid_bits(bits)) {
    return fail(ErrorCode::kMalformed,
                "status list: bits must be 1, 2, 4 or 8, found " + std::to_string(bits));
  }
  z_stream zs{};
  if (inflateInit(&zs) != Z_OK) return fail(ErrorCode::kInternal, "status list: inflateInit");
  zs.next_in = const_cast<Bytef*>(zlib.data());  // NOLINT: zlib's API is not const-correct
  zs.avail_in = static_cast<uInt>(zlib.size());
  Bytes out;
  std::uint8_t chunk[16384];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    zs.next_out = chunk;
    zs.avail_out = sizeof(chunk);
    rc = inflate(&zs, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&zs);
      return fail(ErrorCode::kMalformed, "status list: lst is not valid zlib data");
    }
    std::size_t produced = sizeof(chunk) - zs.avail_out;
    if (out.size() + produced > max_bytes) {
      inflateEnd(&zs);
      return fail(ErrorCode::kLimitExceeded,
                  "status list: decompresses to more than " + std::to_string(max_bytes) + " bytes");
    }
    out.reserve(out.size() + produced);
    out.insert(out.end(), chunk, chunk + produced);
    if (rc == Z_OK && produced == 0 && zs.avail_in == 0) {
      inflateEnd(&zs);
      return fail(ErrorCode::kMalformed, "status list: truncated zlib data");
    }
  }
  bool trailing = zs.avail_in != 0;
  inflateEnd(&zs);
  if (trailing) return fail(ErrorCode::kMalformed, "status list: bytes after the zlib stream");
  return StatusList(bits, std::move(out));
}

Status StatusList::set(std::uint64_t index, std::uint8_t value) {
  if (index >= size()) {
    return fail(ErrorCode::kInvalidArgument, "status list: index " + std::to_string(index) +
                                                 " beyond size " + std::to_string(size()));
  }
  if (bits_ < 8 && value >= (1U << bits_)) {
    return fail(ErrorCode::kInvalidArgument, "status list: value does not fit in the bit width");
  }
  std::uint64_t bit = index * bits_;
  auto shift = static_cast<unsigned>(bit % 8);
  auto mask = static_cast<std::uint8_t>(((1U << bits_) - 1U) << shift);
  auto& byte = bytes_[static_cast<std::size_t>(bit / 8)];
  byte =
      static_cast<std::uint8_t>((byte & ~mask) | ((static_cast<unsigned>(value) << shift) & mask));
  return ok();
}

Result<std::uint8_t> StatusList::get(std::uint64_t index) const {
  if (index >= size()) {
    return fail(ErrorCode::kNotFound, "status list: index " + std::to_string(index) +
                                          " beyond size " + std::to_string(size()));
  }
  std::uint64_t bit = index * bits_;
  auto shift = static_cast<unsigned>(bit % 8);
  unsigned byte = bytes_[static_cast<std::size_t>(bit / 8)];
  unsigned mask = (1U << bits_) - 1U;
  return static_cast<std::uint8_t>((byte >> shift) & mask);
}

Result<Bytes> StatusList::compress() const {
  uLongf size = compressBound(static_cast<uLong>(bytes_.size()));
  Bytes out(size);
  if (compress2(out.data(), &size, bytes_.data(), static_cast<uLong>(bytes_.size()), 9) != Z_OK) {
    return fail(ErrorCode::kInternal, "status list: compress failed");
  }
  out.resize(size);
  return out;
}

Result<std::string> mint_status_list_jwt(Signer& signer, const StatusList& list,
                                         const StatusListToken& meta) {
  auto lst = list.compress();
  if (!lst) return fail(lst.error());
  boost::json::object claims;
  claims["sub"] = meta.sub;
  claims["iat"] = meta.iat;
  if (meta.exp) claims["exp"] = *meta.exp;
  if (meta.ttl) claims["ttl"] = *meta.ttl;
  claims["status_list"] =
      boost::json::object{{"bits", list.bits()}, {"lst", base64url_encode(*lst)}};
  boost::json::object header;
  header["typ"] = kTypStatusList;
  return sign_jws(signer, std::move(header), claims);
}

Result<Bytes> mint_status_list_cwt(Signer& signer, const StatusList& list,
                                   const StatusListToken& meta) {
  auto lst = list.compress();
  if (!lst) return fail(lst.error());
  using cbor::Value;
  Value claims = Value::map();
  claims.put(Value::integer(2), Value::text(meta.sub));
  claims.put(Value::integer(6), Value::integer(meta.iat));
  if (meta.exp) claims.put(Value::integer(4), Value::integer(*meta.exp));
  if (meta.ttl) claims.put(Value::integer(kTtlKey), Value::integer(*meta.ttl));
  claims.put(Value::integer(kStatusListKey),
             Value::map({{Value::text("bits"), Value::uint(list.bits())},
                         {Value::text("lst"), Value::bytes(*lst)}}));
  return sign_cose_sign1(signer, cbor::encode(claims), std::string(kCwtTyp));
}

Result<StatusList> verify_status_list_jwt(std::string_view compact, const KeySet& keys,
                                          std::int64_t now, std::optional<std::string> uri) {
  JwtVerifyOptions options;
  options.typ = std::string(kTypStatusList);
  options.checks.now = now;
  options.checks.require_exp = false;
  auto jwt = verify_jwt(compact, keys, options);
  if (!jwt) return fail(jwt.error().context("status list"));
  if (uri && jwt->claims.sub != *uri) {
    return fail(ErrorCode::kMalformed, "status list: sub \"" + jwt->claims.sub.value_or("") +
                                           "\" is not the token's uri \"" + *uri + "\"");
  }
  const auto* sl = json::get_object(jwt->payload, "status_list");
  auto bits = sl != nullptr ? json::get_int(*sl, "bits") : std::nullopt;
  auto lst = sl != nullptr ? json::get_string(*sl, "lst") : std::nullopt;
  if (!bits || !lst || *bits < 0 || *bits > 8) {
    return fail(ErrorCode::kMalformed, "status list: missing status_list {bits, lst}");
  }
  auto raw = base64url_decode(*lst);
  if (!raw) return fail(ErrorCode::kMalformed, "status list: lst is not base64url");
  return list_from(static_cast<unsigned>(*bits), *raw);
}

Result<StatusList> verify_status_list_cwt(ByteSpan cwt, const KeySet& keys, std::int64_t now,
                                          std::optional<std::string> uri) {
  auto msg = verify_cose_sign1(cwt, keys);
  if (!msg) return fail(msg.error().context("status list"));
  const auto* typ = msg->protected_header.find(16);
  if (typ == nullptr || typ->as_text() == nullptr || *typ->as_text() != kCwtTyp) {
    return fail(ErrorCode::kMalformed,
                "status list: protected typ must be application/statuslist+cwt");
  }
  auto payload = cbor::decode(msg->payload, kCoseLimits);
  if (!payload) return fail(payload.error().context("status list"));
  auto claims = claims_from_cbor(*payload);
  if (!claims) return fail(claims.error().context("status list"));
  ClaimChecks checks;
  checks.now = now;
  checks.require_exp = false;
  WARDEN_TRY_STATUS(check_claims(*claims, checks));
  if (uri && claims->sub != *uri) {
    return fail(ErrorCode::kMalformed, "status list: sub is not the token's uri \"" + *uri + "\"");
  }
  const auto* sl = payload->find(kStatusListKey);
  const auto* bits = sl != nullptr ? sl->find("bits") : nullptr;
  const auto* lst = sl != nullptr ? sl->find("lst") : nullptr;
  if (bits == nullptr || !bits->as_uint() || *bits->as_uint() > 8 || lst == nullptr ||
      lst->as_bytes() == nullptr) {
    return fail(ErrorCode::kMalformed, "status list: missing status_list {bits, lst}");
  }
  return list_from(static_cast<unsigned>(*bits->as_uint()), *lst->as_bytes());
}

Status check_status(const Claims& claims, const StatusList& list) {
  if (!claims.status) return fail(ErrorCode::kMalformed, "token has no status claim");
  auto value = list.get(claims.status->idx);
  if (!value) return fail(ErrorCode::kRevoked, "revoked: status index outside the list");
  if (*value != kStatusValid) {
    return fail(ErrorCode::kRevoked, "revoked: status list entry " +
                                         std::to_string(claims.status->idx) + " is " +
                                         (*value == kStatusSuspended ? "suspended" : "invalid"));
  }
  return ok();
}

}  // namespace warden::token
