#include "issuer/ssf/receivers.h"

#include <algorithm>
#include <cctype>

#include "issuer/assign.h"
#include "platform/base/encoding.h"
#include "platform/base/openssl.h"

namespace warden::issuer::ssf {
namespace {

constexpr std::size_t kMaxToken = 512;
constexpr std::size_t kTokenBytes = 32;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_b64token(std::string_view t) {
  const auto end = t.find_last_not_of('=');
  if (end == std::string_view::npos) return false;
  return std::all_of(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(end) + 1, [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '+' || c == '/';
  });
}

}  // namespace

std::string token_hash(std::string_view token) {
  return hex_encode(ossl::sha256(
      ByteSpan(reinterpret_cast<const std::uint8_t*>(token.data()), token.size())));  // NOLINT
}

Result<std::string> authenticate_receiver(Store& store, std::string_view authorization) {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.empty()) {
    return fail(ErrorCode::kUntrusted,
                "ssf: a receiver bearer token is required (Authorization: "
                "Bearer <token>, RFC 6750)");
  }
  if (authorization.size() <= kScheme.size() ||
      !iequals(authorization.substr(0, kScheme.size()), kScheme)) {
    return fail(ErrorCode::kUntrusted, "ssf: Authorization must be \"Bearer <token>\"");
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  if (token.size() > kMaxToken || !is_b64token(token)) {
    return fail(ErrorCode::kUntrusted, "ssf: the bearer token is malformed");
  }
  WARDEN_ASSIGN(receiver, store.find_ssf_receiver(token_hash(token)));
  if (!receiver) return fail(ErrorCode::kUntrusted, "ssf: unknown bearer token");
  return receiver->name;
}

Status check_receiver_name(std::string_view name) {
  const bool valid =
      !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
      });
  if (!valid) {
    return fail(ErrorCode::kInvalidArgument, "ssf receiver: name expected 1..64 of [A-Za-z0-9._-]");
  }
  return ok();
}

Result<std::string> create_receiver(Store& store, Random& random, std::string_view name,
                                    std::int64_t now) {
  WARDEN_TRY_STATUS(check_receiver_name(name));
  Bytes secret(kTokenBytes);
  random.fill(secret);
  std::string token = base64url_encode(secret);
  OPENSSL_cleanse(secret.data(), secret.size());
  WARDEN_TRY_STATUS(store.add_ssf_receiver({std::string(name), token_hash(token), now}));
  return token;
}

}  // namespace warden::issuer::ssf
