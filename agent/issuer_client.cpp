#include "agent/issuer_client.h"

#include <algorithm>
#include <array>
#include <cctype>

#include "attest/protocol/errors.h"

namespace warden::agent {
namespace {

// Decodes a success body or turns a 4xx/5xx into the issuer's Error.
template <class T, class Decode>
Result<T> decode_as(Result<Bytes> body, Decode decode, std::string_view what) {
  if (!body) return fail(std::move(body).error());
  auto m = decode(*body);
  if (!m) return fail(std::move(m).error().context(what));
  return std::move(*m);
}

Error response_error(const net::Response& r, std::string_view target) {
  if (r.content_type.starts_with(protocol::kContentType)) {
    if (auto e = protocol::decode_error_response(r.body)) {
      Error err = protocol::to_error(*e);
      err.message = "issuer " + std::string(target) + ": " + err.message;
      return err;
    }
  }
  // The issuer's public JSON routes (status lists, JWKS) answer errors in the JSON envelope.
  if (r.content_type.starts_with("application/json")) {
    if (auto e = protocol::parse_error_json(warden::to_string(r.body))) {
      Error err = protocol::to_error(*e);
      err.message = "issuer " + std::string(target) + ": " + err.message;
      return err;
    }
  }
  const ErrorCode code = r.status >= 500 ? ErrorCode::kUnavailable : ErrorCode::kInternal;
  return Error{code,
               "issuer " + std::string(target) + ": expected HTTP 200, found " +
                   std::to_string(r.status) + " without an error-response body",
               0, 0};
}

}  // namespace

Result<std::unique_ptr<IssuerClient>> IssuerClient::create(const std::string& issuer_url,
                                                           const std::filesystem::path& ca_file) {
  net::ClientOptions options;
  options.ca_file = ca_file;
  auto http = net::HttpsClient::create(issuer_url, std::move(options));
  if (!http) return fail(std::move(http).error().context("issuer client"));
  return create(std::move(*http));
}

Result<std::unique_ptr<IssuerClient>> IssuerClient::create(std::unique_ptr<net::HttpsClient> http) {
  if (!http) return fail(ErrorCode::kInvalidArgument, "issuer client: no HTTPS client");
  return std::unique_ptr<IssuerClient>(new IssuerClient(std::move(http)));
}

Result<Bytes> IssuerClient::post(std::string_view target, ByteSpan body) {
  std::lock_guard lock(mu_);
  auto r = http_->request("POST", target, protocol::kContentType, body,
                          {{"accept", std::string(protocol::kContentType)}});
  if (!r) return fail(std::move(r).error().context("issuer " + std::string(target)));
  if (r->status != 200) return fail(response_error(*r, target));
  return std::move(r->body);
}

Result<protocol::EnrollResponse> IssuerClient::enroll(const protocol::EnrollRequest& request) {
  return decode_as<protocol::EnrollResponse>(post("/v1/enroll", protocol::encode(request)),
                                             protocol::decode_enroll_response, "enroll");
}

Result<protocol::ActivateResponse> IssuerClient::activate(
    const protocol::ActivateRequest& request) {
  // Ids are issuer-minted text; refuse anything that would change the URL's path.
  for (char c : request.enrollment_id) {
    const bool safe =
        std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.';
    if (!safe) {
      return fail(ErrorCode::kInvalidArgument,
                  "activate: enrollment id expected [A-Za-z0-9._-], found another character");
    }
  }
  return decode_as<protocol::ActivateResponse>(
      post("/v1/enroll/" + request.enrollment_id + "/activate", protocol::encode(request)),
      protocol::decode_activate_response, "activate");
}

Result<protocol::ChallengeResponse> IssuerClient::challenge(
    const protocol::ChallengeRequest& request) {
  return decode_as<protocol::ChallengeResponse>(post("/v1/challenge", protocol::encode(request)),
                                                protocol::decode_challenge_response, "challenge");
}

Result<protocol::AttestResponse> IssuerClient::attest(const protocol::AttestRequest& request) {
  return decode_as<protocol::AttestResponse>(post("/v1/attest", protocol::encode(request)),
                                             protocol::decode_attest_response, "attest");
}

Result<protocol::TokenResponse> IssuerClient::token(const protocol::TokenRequest& request) {
  return decode_as<protocol::TokenResponse>(post("/v1/token", protocol::encode(request)),
                                            protocol::decode_token_response, "token");
}

Result<protocol::RevokeResponse> IssuerClient::revoke(const protocol::RevokeRequest& request) {
  return decode_as<protocol::RevokeResponse>(post("/v1/revoke", protocol::encode(request)),
                                             protocol::decode_revoke_response, "revoke");
}

Result<std::string> IssuerClient::get(const std::string& target, std::string_view accept) {
  std::lock_guard lock(mu_);
  auto r = http_->request("GET", target, "", {}, {{"accept", std::string(accept)}});
  if (!r) return fail(std::move(r).error().context("issuer " + target));
  if (r->status != 200) return fail(response_error(*r, target));
  return warden::to_string(r->body);
}

Result<std::string> IssuerClient::status_list(std::string_view list_id) {
  return get("/v1/status/" + std::string(list_id), "application/statuslist+jwt");
}

Result<std::string> IssuerClient::jwks() {
  return get("/.well-known/jwks.json", "application/json");
}

std::string IssuerClient::token_url() const { return http_->url("/v1/token"); }

std::chrono::milliseconds Backoff::next() {
  const unsigned shift = std::min(attempt_, 20U);
  ++attempt_;
  const auto window = std::min<std::int64_t>(base_.count() << shift, max_.count());
  std::array<std::uint8_t, 4> r{};
  random_.fill(r);
  const std::uint32_t v = static_cast<std::uint32_t>(r[0]) << 24 |
                          static_cast<std::uint32_t>(r[1]) << 16 |
                          static_cast<std::uint32_t>(r[2]) << 8 | r[3];
  const std::int64_t half = window / 2;
  const std::int64_t span = window - half;
  const std::int64_t jitter =
      span > 0 ? static_cast<std::int64_t>(v % static_cast<std::uint64_t>(span + 1)) : 0;
  return std::chrono::milliseconds(half + jitter);
}

}  // namespace warden::agent
