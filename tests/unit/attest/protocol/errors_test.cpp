#include "attest/protocol/errors.h"

#include <map>

#include <gtest/gtest.h>

namespace warden::protocol {
namespace {

// Every value the enum names: to_string() answers "internal" only for kInternal and for values
// outside the enum, so this finds a newly appended code without listing it.
std::vector<ErrorCode> every_code() {
  std::vector<ErrorCode> out{ErrorCode::kInternal};
  for (int i = 1; i < 0x10000; ++i) {
    const auto code = static_cast<ErrorCode>(i);
    if (to_string(code) != "internal") out.push_back(code);
  }
  return out;
}

TEST(ErrorTable, HasOneRowPerCodeInEnumOrder) {
  const auto codes = every_code();
  const auto table = error_table();
  ASSERT_EQ(table.size(), codes.size()) << "a code without a row, or a row without a code";
  for (std::size_t i = 0; i < codes.size(); ++i) {
    EXPECT_EQ(table[i].code, codes[i]) << to_string(codes[i]);
    EXPECT_EQ(&error_info(codes[i]), &table[i]);
    EXPECT_EQ(error_code_from_string(to_string(codes[i])), codes[i]);
  }
  EXPECT_EQ(error_info(static_cast<ErrorCode>(0xFFFF)).code, ErrorCode::kInternal);
  EXPECT_EQ(error_code_from_string("no_such_code"), std::nullopt);
}

TEST(ErrorTable, EveryCodeHasItsHttpAndGrpcStatus) {
  struct Want {
    unsigned http;
    int grpc;
    bool credential;
  };
  // The answers docs/protocol.md and docs/local-api.md publish; a new code fails here until
  // it is given one.
  const std::map<std::string_view, Want> want{
      {"internal", {500, 13, false}},
      {"invalid_argument", {400, 3, false}},
      {"malformed", {400, 3, false}},
      {"limit_exceeded", {429, 8, false}},
      {"unsupported", {400, 12, false}},
      {"not_found", {404, 5, false}},
      {"already_exists", {409, 6, false}},
      {"io", {500, 13, false}},
      {"crypto", {500, 13, false}},
      {"tpm", {500, 13, false}},
      {"unavailable", {503, 14, false}},
      {"timeout", {503, 4, false}},
      {"permission_denied", {403, 7, false}},
      {"bad_signature", {401, 16, true}},
      {"nonce_mismatch", {401, 16, true}},
      {"pcr_digest_mismatch", {403, 7, false}},
      {"pcr_selection_mismatch", {403, 7, false}},
      {"replay_mismatch", {403, 7, false}},
      {"policy_violation", {403, 7, false}},
      {"expired", {401, 16, true}},
      {"not_yet_valid", {401, 16, true}},
      {"revoked", {403, 7, false}},
      {"replay", {409, 6, true}},
      {"audience_mismatch", {403, 7, false}},
      {"unknown_key", {401, 16, true}},
      {"algorithm_not_allowed", {403, 7, false}},
      {"proof_mismatch", {401, 16, true}},
      {"conflict", {409, 10, false}},
      {"untrusted", {401, 16, true}},
  };
  for (const ErrorCode code : every_code()) {
    const auto it = want.find(to_string(code));
    ASSERT_NE(it, want.end()) << "no expected status for " << to_string(code);
    EXPECT_EQ(http_status(code), it->second.http) << to_string(code);
    EXPECT_EQ(static_cast<int>(grpc_code(code)), it->second.grpc) << to_string(code);
    EXPECT_EQ(error_info(code).credential, it->second.credential) << to_string(code);
    // Errors are errors on either wire.
    EXPECT_GE(http_status(code), 400u);
    EXPECT_NE(grpc_code(code), GrpcCode::kOk);
  }
  EXPECT_EQ(want.size(), every_code().size());
}

TEST(ErrorEnvelope, RoundTripsAndEscapes) {
  const std::string body = error_json("malformed", "field \"x\"\n\\ bad");
  EXPECT_TRUE(body.starts_with(R"({"error":"malformed","reason":")")) << body;
  auto parsed = parse_error_json(body);
  ASSERT_TRUE(parsed) << parsed.error().message;
  EXPECT_EQ(parsed->code, "malformed");
  EXPECT_EQ(parsed->reason, "field \"x\"\n\\ bad");
}

TEST(ErrorEnvelope, RejectsWhatIsNotAnEnvelope) {
  for (const std::string_view bad :
       {"", "[]", "not json", R"({"error":"x"})", R"({"reason":"x"})",
        R"({"error":1,"reason":"x"})", R"({"error":"x","reason":null})"}) {
    auto r = parse_error_json(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kMalformed) << bad;
  }
}

TEST(ErrorEnvelope, InternalErrorsHideTheirDetail) {
  EXPECT_EQ(public_reason(Error{ErrorCode::kInternal, "db password wrong", 0, 0}),
            "internal error");
  EXPECT_EQ(public_reason(Error{ErrorCode::kNotFound, "no device d1", 0, 0}), "no device d1");
}

}  // namespace
}  // namespace warden::protocol
