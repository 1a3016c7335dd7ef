// Independent verification of Warden's JWT, JWKS, DPoP proof and COSE_Sign1 CWT by Debian's
// python3-jwcrypto, python3-cbor2 and python3-cryptography.

#include <gtest/gtest.h>

#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/jwt.h"
#include "platform/base/clock.h"
#include "platform/base/file.h"
#include "tests/support/process.h"

namespace warden::token {
namespace {

TEST(TokenInterop, PythonLibrariesVerifyOurTokens) {
  test::TempDir dir("warden-token-interop");
  SystemRandom random;
  auto issuer = EcSigner::generate(random).value();
  auto pop = EcSigner::generate(random, "pop").value();
  KeySet keys;
  keys.add(issuer.public_jwk());

  std::int64_t now = SystemClock().unix_now();
  Claims c;
  c.iss = "https://issuer.warden.test";
  c.sub = "spiffe://warden.test/web";
  c.aud = {"https://api.warden.test"};
  c.iat = now;
  c.exp = now + 300;
  c.cnf = Confirmation{pop.public_jwk().thumbprint(), std::nullopt};
  auto token = mint_jwt(issuer, kTypWorkload, c).value();
  ProofRequest req{"POST", "https://api.warden.test/v1/things", token, std::nullopt};
  auto proof = create_proof(pop, req, now, random).value();

  Claims device = c;
  device.cnf = Confirmation{std::nullopt, pop.public_jwk()};
  device.eat_profile = std::string(kEatProfile);
  device.ueid = Bytes{1, 2, 3, 4, 5, 6, 7};
  auto cwt = mint_cwt(issuer, device).value();

  boost::json::object expected{{"aud", c.aud[0]},
                               {"sub", *c.sub},
                               {"htm", req.htm},
                               {"htu", req.htu},
                               {"eat_profile", kEatProfile}};
  auto put = [&](const char* name, ByteSpan data) {
    ASSERT_TRUE(write_file_atomic(dir.path() / name, data, 0600));
  };
  put("jwks.json", to_bytes(keys.to_json()));
  put("token.jwt", to_bytes(token));
  put("proof.jwt", to_bytes(proof));
  put("token.cwt", cwt);
  put("expected.json", to_bytes(json::serialize(expected)));

  auto out = test::run_command(
      {"/usr/bin/python3", WARDEN_SOURCE_DIR "/tests/integration/token_interop.py", dir.path()});
  EXPECT_EQ(out.exit_code, 0) << out.out;
  EXPECT_NE(out.out.find("interop OK"), std::string::npos) << out.out;
}

}  // namespace
}  // namespace warden::token
