// wardenctl token inspect|verify: decode or verify a Warden JWT/CWT.

#include <cctype>
#include <iostream>
#include <iterator>
#include <optional>
#include <string>

#include "agent/cli/commands.h"
#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/jwt.h"
#include "attest/token/status_list.h"
#include "platform/base/clock.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"

namespace warden::cli {
namespace {

using namespace warden::token;  // NOLINT(google-build-using-namespace)

constexpr std::size_t kMaxTokenFile = 1 << 20;

Result<Bytes> read_input(const std::string& path) {
  if (path == "-") {
    std::string data((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (data.size() > kMaxTokenFile) return fail(ErrorCode::kLimitExceeded, "stdin: too large");
    return to_bytes(data);
  }
  auto bytes = read_file(path, kMaxTokenFile);
  if (!bytes) return fail(bytes.error().context(path));
  return bytes;
}

/// A token in one of its accepted spellings: compact JWT, or CWT as raw CBOR, hex or base64url.
struct TokenInput {
  std::optional<std::string> jwt;
  Bytes cwt;
};

TokenInput detect(const Bytes& raw) {
  std::string text = to_string(raw);
  auto start = text.find_first_not_of(" \t\r\n");
  auto end = text.find_last_not_of(" \t\r\n");
  std::string trimmed = start == std::string::npos ? "" : text.substr(start, end - start + 1);
  bool b64url = !trimmed.empty();
  bool is_hex = !trimmed.empty() && trimmed.size() % 2 == 0;
  int dots = 0;
  for (char c : trimmed) {
    auto u = static_cast<unsigned char>(c);
    if (c == '.') {
      ++dots;
    } else if (std::isalnum(u) == 0 && c != '-' && c != '_') {
      b64url = false;
    }
    if (std::isxdigit(u) == 0) is_hex = false;
  }
  if (b64url && dots == 2) return {trimmed, {}};
  if (is_hex) {
    if (auto bytes = hex_decode(trimmed)) return {std::nullopt, std::move(*bytes)};
  }
  if (b64url && dots == 0) {
    if (auto bytes = base64url_decode(trimmed)) return {std::nullopt, std::move(*bytes)};
  }
  return {std::nullopt, raw};
}

boost::json::value cbor_to_json(const cbor::Value& v) {
  using T = cbor::Value::Type;
  switch (v.type()) {
    case T::kUnsigned:
      return v.raw_argument();
    case T::kNegative:
      if (auto i = v.as_int()) return *i;
      return boost::json::string("-1-" + std::to_string(v.raw_argument()));
    case T::kBytes:
      return boost::json::string("h'" + hex_encode(*v.as_bytes()) + "'");
    case T::kText:
      return boost::json::string(*v.as_text());
    case T::kArray: {
      boost::json::array a;
      for (const auto& item : v.items()) a.push_back(cbor_to_json(item));
      return a;
    }
    case T::kMap: {
      boost::json::object o;
      for (std::size_t i = 0; i < v.map_size(); ++i) {
        const auto& key = v.map_key(i);
        std::string name =
            key.as_text() != nullptr ? *key.as_text() : json::serialize(cbor_to_json(key));
        o[name] = cbor_to_json(v.map_value(i));
      }
      return o;
    }
    case T::kTag:
      return boost::json::object{
          {"tag", v.tag_number()},
          {"content",
           v.tag_content() != nullptr ? cbor_to_json(*v.tag_content()) : boost::json::value()}};
    case T::kBool:
      return v.as_bool().value_or(false);
    case T::kFloat:
      return v.as_float().value_or(0);
    case T::kNull:
    case T::kUndefined:
      return nullptr;
  }
  return nullptr;
}

std::string_view reason(ErrorCode code) {
  switch (code) {
    case ErrorCode::kExpired:
      return "expired";
    case ErrorCode::kNotYetValid:
      return "not yet valid";
    case ErrorCode::kBadSignature:
      return "bad signature";
    case ErrorCode::kUnknownKey:
      return "unknown kid";
    case ErrorCode::kAlgorithmNotAllowed:
      return "algorithm not allowed";
    case ErrorCode::kAudienceMismatch:
      return "wrong audience";
    case ErrorCode::kRevoked:
      return "revoked";
    case ErrorCode::kProofMismatch:
      return "proof mismatch";
    case ErrorCode::kReplay:
      return "proof replayed";
    default:
      return "malformed";
  }
}

int report_invalid(const Error& error) {
  std::cerr << "wardenctl: token invalid: " << reason(error.code) << " (" << error.message << ")\n";
  return 1;
}

int inspect(const std::string& path) {
  auto raw = read_input(path);
  if (!raw) return report_invalid(raw.error());
  auto input = detect(*raw);
  boost::json::object out;
  if (input.jwt) {
    auto jws = decode_jws(*input.jwt);
    if (!jws) return report_invalid(jws.error());
    out = {{"format", "jwt"}, {"header", jws->header}, {"claims", jws->payload}};
  } else {
    auto msg = decode_cose_sign1(input.cwt);
    if (!msg) return report_invalid(msg.error());
    auto payload = cbor::decode(msg->payload, kCoseLimits);
    if (!payload) return report_invalid(payload.error());
    boost::json::value claims = cbor_to_json(*payload);
    if (auto parsed = claims_from_cbor(*payload)) claims = claims_to_json(*parsed);
    out = {{"format", "cwt"},
           {"protected", cbor_to_json(msg->protected_header)},
           {"unprotected", cbor_to_json(msg->unprotected)},
           {"claims", claims}};
  }
  std::cout << json::serialize(out) << "\n";
  return 0;
}

struct VerifyArgs {
  std::string file;
  std::string jwks;
  std::optional<std::string> aud;
  std::optional<std::int64_t> at;
  std::int64_t leeway = ClaimChecks{}.leeway;
  std::optional<std::string> proof, htm, htu, status_list;
};

int verify(const VerifyArgs& args) {
  auto jwks_text = read_file(args.jwks, 1 << 20);
  if (!jwks_text) return report_invalid(jwks_text.error());
  auto keys = KeySet::from_json(to_string(*jwks_text));
  if (!keys) return report_invalid(keys.error());
  auto raw = read_input(args.file);
  if (!raw) return report_invalid(raw.error());
  auto input = detect(*raw);
  std::int64_t now = args.at ? *args.at : SystemClock().unix_now();
  ClaimChecks checks;
  checks.now = now;
  checks.leeway = args.leeway;
  checks.audience = args.aud;
  Claims claims;
  std::string token_text;
  if (input.jwt) {
    JwtVerifyOptions options;
    options.checks = checks;
    auto v = verify_jwt(*input.jwt, *keys, options);
    if (!v) return report_invalid(v.error());
    claims = std::move(v->claims);
    token_text = *input.jwt;
  } else {
    auto v = verify_cwt(input.cwt, *keys, checks);
    if (!v) return report_invalid(v.error());
    claims = std::move(v->claims);
    token_text = base64url_encode(input.cwt);
  }
  if (args.proof) {
    if (!args.htm || !args.htu) {
      std::cerr << "wardenctl: --proof needs --htm and --htu\n";
      return 2;
    }
    auto proof = read_input(*args.proof);
    if (!proof) return report_invalid(proof.error());
    if (!claims.cnf || !claims.cnf->jkt) {
      return report_invalid(Error{ErrorCode::kProofMismatch, "token has no cnf key binding", 0, 0});
    }
    ReplayCache cache(1, 300);
    ProofCheck check;
    check.htm = *args.htm;
    check.htu = *args.htu;
    check.now = now;
    check.access_token = token_text;
    check.expected_jkt = claims.cnf->jkt;
    auto text = detect(*proof);
    auto v = verify_proof(text.jwt.value_or(to_string(*proof)), check, cache);
    if (!v) return report_invalid(v.error());
  }
  if (args.status_list) {
    if (!claims.status) {
      return report_invalid(Error{ErrorCode::kMalformed, "token has no status claim", 0, 0});
    }
    auto list_raw = read_input(*args.status_list);
    if (!list_raw) return report_invalid(list_raw.error());
    auto list_input = detect(*list_raw);
    auto list = list_input.jwt
                    ? verify_status_list_jwt(*list_input.jwt, *keys, now, claims.status->uri)
                    : verify_status_list_cwt(list_input.cwt, *keys, now, claims.status->uri);
    if (!list) return report_invalid(list.error().context("status list"));
    if (auto st = check_status(claims, *list); !st) return report_invalid(st.error());
  }
  std::cout << json::serialize(
                   boost::json::object{{"valid", true}, {"claims", claims_to_json(claims)}})
            << "\n";
  return 0;
}

}  // namespace

void register_token_commands(CLI::App& app, CommandResult& result) {
  auto* token = app.add_subcommand(
      "token", "Fetch a token from the agent (--audience), or inspect and verify tokens");
  token->footer(
      "Examples:\n  wardenctl token --audience https://rp.example\n"
      "  wardenctl token verify --jwks jwks.json --aud https://rp.example --leeway 30 token.jwt");
  token->require_subcommand(0, 1);
  add_token_fetch(token, result);

  auto path = std::make_shared<std::string>();
  auto* ins = token->add_subcommand("inspect", "Decode a token WITHOUT verifying it (JSON output)");
  ins->add_option("FILE", *path, "compact JWT, or CWT as CBOR/hex/base64url; - for stdin")
      ->required();
  ins->footer("Example:\n  wardenctl token inspect token.jwt");
  ins->callback([path, &result] { result.exit_code = inspect(*path); });

  auto args = std::make_shared<VerifyArgs>();
  auto* ver = token->add_subcommand("verify", "Verify a token; exit 0 only when valid");
  ver->add_option("FILE", args->file, "token file or -")->required();
  ver->footer(
      "Example:\n  wardenctl token verify --jwks jwks.json --aud https://rp.example token.jwt");
  ver->add_option("--jwks", args->jwks, "JWK Set of the issuer's keys")->required();
  ver->add_option("--aud", args->aud, "required audience");
  ver->add_option("--at", args->at, "verify at this UNIX time instead of now");
  ver->add_option("--leeway", args->leeway, "seconds of clock skew tolerated on exp, nbf and iat")
      ->check(CLI::Range(std::int64_t{0}, std::int64_t{3600}))
      ->capture_default_str();
  ver->add_option("--proof", args->proof, "DPoP-shaped proof of possession");
  ver->add_option("--htm", args->htm, "HTTP method the proof must name");
  ver->add_option("--htu", args->htu, "HTTP URI the proof must name");
  ver->add_option("--status-list", args->status_list, "status list token (JWT or CWT)");
  ver->callback([args, &result] { result.exit_code = verify(*args); });
}

}  // namespace warden::cli
