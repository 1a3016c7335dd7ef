// The issuer's verifier and token service driven in-process with real TPM messages from a
// private swtpm: EK certificate, AK, ActivateCredential, quotes, certified binding keys and
// signatures made by the TPM, against a real SQLite store.
#include "issuer/service.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <openssl/x509.h>

#include "attest/eventlog/eventlog.h"
#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/jwt.h"
#include "attest/token/set.h"
#include "attest/token/status_list.h"
#include "attest/tpm_policy/authorized_policy.h"
#include "issuer/admin/admin_json.h"
#include "issuer/nonce.h"
#include "issuer/store/sql.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"
#include "platform/tpm/tpm.h"
#include "tests/support/ima_list.h"
#include "tests/support/swtpm.h"

namespace warden::issuer {
namespace {

// The admin API's JSON of a service answer (issuer/admin/admin_json.h).
template <class T>
Result<std::string> admin_json(Result<T> answer) {
  if (!answer) return fail(std::move(answer).error());
  return admin::to_json(*answer);
}

namespace ev = attest::eventlog;
using protocol::Verdict;
using test::ima_chunk;
using test::ImaChunk;

constexpr const char* kTokenUrl = "https://issuer.test:8443/v1/token";
const char* const kFullSelection = "sha256:0,1,2,3,4,5,6,7";

Bytes pem_file_to_der(const std::filesystem::path& path) {
  auto pem = read_file(path);
  EXPECT_TRUE(pem);
  auto cert = ossl::certificate_from_pem(warden::to_string(*pem));
  EXPECT_TRUE(cert) << cert.error().message;
  unsigned char* out = nullptr;
  int len = i2d_X509(cert->get(), &out);
  Bytes der(out, out + len);
  OPENSSL_free(out);
  return der;
}

// A crypto-agile (sha256) event log: an S-CRTM version event in PCR 0 and a separator in each of
// PCRs 0..7. `events` returns the (pcr, digest) pairs the firmware would have extended.
struct BootLog {
  Bytes bytes;
  std::vector<std::pair<unsigned, Bytes>> extends;
};

BootLog make_boot_log(std::string_view crtm_version) {
  BootLog out;
  ByteWriter w;
  ByteWriter spec;
  spec.bytes(std::string_view("Spec ID Event03\0", 16)).u32le(0).u8(0).u8(2).u8(0).u8(2).u32le(1);
  spec.u16le(0x0B).u16le(32).u8(0);
  const Bytes spec_bytes = std::move(spec).take();
  w.u32le(0).u32le(ev::kEvNoAction).bytes(Bytes(20, 0));
  w.u32le(static_cast<std::uint32_t>(spec_bytes.size())).bytes(spec_bytes);
  auto event = [&](unsigned pcr, std::uint32_t type, ByteSpan data, const Bytes& digest) {
    w.u32le(pcr).u32le(type).u32le(1).u16le(0x0B).bytes(digest);
    w.u32le(static_cast<std::uint32_t>(data.size())).bytes(data);
    out.extends.emplace_back(pcr, digest);
  };
  const Bytes version = to_bytes(crtm_version);
  event(0, ev::kEvSCrtmVersion, version, ossl::sha256(version));
  const Bytes sep(4, 0);
  for (unsigned pcr = 0; pcr < 8; ++pcr) event(pcr, ev::kEvSeparator, sep, ossl::sha256(sep));
  out.bytes = std::move(w).take();
  return out;
}

// PCR 0 after replaying make_boot_log(version).
Bytes expected_pcr0(std::string_view version) {
  Bytes pcr(32, 0);
  for (const Bytes& d : {ossl::sha256(to_bytes(version)), ossl::sha256(Bytes(4, 0))}) {
    Bytes cat = pcr;
    cat.insert(cat.end(), d.begin(), d.end());
    pcr = ossl::sha256(cat);
  }
  return pcr;
}

std::string policy_toml(const std::string& version, const Bytes& pcr0,
                        const std::string& extra = {}) {
  return "version = \"" + version + "\"\n" + extra + "\n[pcrs.sha256]\n0 = \"" + hex_encode(pcr0) +
         "\"\n\n"
         "[[workload]]\nname = \"web\"\naudiences = [\"https://api.test\"]\n"
         "scopes = [\"read\", \"write\"]\nmax_ttl = 120\n"
         "[workload.match]\nuid = 1000\nsystemd_unit = \"web*.service\"\n"
         "[[workload]]\nname = \"containers\"\naudiences = [\"https://api.test\"]\n"
         "scopes = [\"read\"]\n[workload.match]\nuid = 2000\ncontainer = \"any\"\n";
}

Bytes tpmt_signature(const tpm::Signature& s) {
  ByteWriter w;
  w.u16be(0x0018).u16be(0x000B);
  w.tpm2b(ByteSpan(s.raw).first(32)).tpm2b(ByteSpan(s.raw).subspan(32));
  return std::move(w).take();
}

bool has_reason(const protocol::AttestResponse& r, std::string_view code) {
  for (const auto& reason : r.reasons)
    if (reason.code == code) return true;
  return false;
}

std::string reasons_text(const protocol::AttestResponse& r) {
  std::string out;
  for (const auto& reason : r.reasons)
    out += reason.code + " [" + reason.subject + "] " + reason.found.value_or("") + "\n";
  return out;
}

struct AttestOptions {
  const tpm::AkBlob* quote_ak = nullptr;  // default: the enrolled AK
  std::string requested = kFullSelection;
  std::string quoted = kFullSelection;
  const Bytes* boot_log = nullptr;  // default: the log that was extended
  std::optional<protocol::ImaLog> ima;
};

class IssuerServiceTest : public test::SwtpmTest {
 protected:
  void SetUp() override {
    SwtpmTest::SetUp();
    clock_.set(SystemClock().unix_now());  // the EK certificate's validity is real time
    boot_ = make_boot_log("warden-test-crtm-1");
    for (const auto& [pcr, digest] : boot_.extends)
      ASSERT_TRUE(tpm_api().extend_pcr(pcr, TpmAlg::kSha256, digest));
    config_.enrollment.manufacturer_ca_files = {tpm_->ca_cert().string()};
    const auto policy_path = dir_.path() / "policy.toml";
    ASSERT_TRUE(write_file_atomic(
        policy_path, to_bytes(policy_toml("p1", expected_pcr0("warden-test-crtm-1"))), 0644));
    config_.policy_file = policy_path.string();
    open_issuer();
  }

  void open_issuer() {
    service_.reset();
    keys_.reset();
    if (!store_) {
      auto store = open_sqlite_store((dir_.path() / "issuer.db").string());
      ASSERT_TRUE(store) << store.error().message;
      store_ = std::move(*store);
      ASSERT_TRUE(store_->migrate());
    }
    auto keys = SigningKeys::open(dir_.path() / "keys", *store_, clock_);
    ASSERT_TRUE(keys) << keys.error().message;
    keys_ = std::move(*keys);
    auto seal = SealAuthority::open(dir_.path() / "keys");
    ASSERT_TRUE(seal) << seal.error().message;
    seal_ = std::move(*seal);
    IssuerService::Options o;
    o.config = &config_;
    o.store = store_.get();
    o.keys = keys_.get();
    o.clock = &clock_;
    o.random = &random_;
    o.nonce_key = SecretBytes(Bytes(32, 0x42));
    o.issuer_url = "https://issuer.test:8443";
    o.status_list_bits = status_list_bits_;
    o.seal_authority = seal_.get();
    auto service = IssuerService::create(std::move(o));
    ASSERT_TRUE(service) << service.error().message;
    service_ = std::move(*service);
  }

  tpm::Tpm tpm_api() const { return tpm::Tpm(tpm_->tcti()); }

  protocol::EnrollRequest enroll_request(const tpm::AkBlob& ak, bool with_chain = true) {
    auto ek = tpm_api().endorsement_key();
    EXPECT_TRUE(ek) << ek.error().message;
    protocol::EnrollRequest r;
    r.ek_public = ek->public_area;
    r.ek_cert = ek->certificate;
    if (with_chain) r.ek_chain = {pem_file_to_der(tpm_->issuer_cert())};
    r.ak_public = ak.public_area;
    r.ak_name = ak.name();
    r.metadata = {"host-1", "machine-1", std::string("edge"), "test"};
    return r;
  }

  // enroll + ActivateCredential + activate; returns the device id.
  std::string enroll_device() {
    auto ak = tpm_api().create_ak();
    EXPECT_TRUE(ak) << ak.error().message;
    ak_ = *ak;
    auto enrolled = service_->enroll(enroll_request(ak_));
    EXPECT_TRUE(enrolled) << enrolled.error().message;
    if (!enrolled) return {};
    auto secret =
        tpm_api().activate_credential(ak_, enrolled->credential_blob, enrolled->encrypted_secret);
    EXPECT_TRUE(secret) << secret.error().message;
    auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak_.name());
    auto activated = service_->activate(enrolled->enrollment_id, {enrolled->enrollment_id, *proof});
    EXPECT_TRUE(activated) << activated.error().message;
    return activated ? activated->device_id : std::string();
  }

  Bytes challenge(const std::string& device) {
    auto c = service_->challenge({device});
    EXPECT_TRUE(c) << c.error().message;
    return c ? c->nonce : Bytes{};
  }

  protocol::AttestRequest attest_request(const std::string& device, const Bytes& nonce,
                                         const AttestOptions& o = {}) {
    const tpm::AkBlob& qak = o.quote_ak != nullptr ? *o.quote_ak : ak_;
    auto quoted = PcrSelection::parse(o.quoted);
    auto quote = tpm_api().quote(qak, *quoted, nonce);
    EXPECT_TRUE(quote) << quote.error().message;
    auto bk = tpm_api().create_binding_key(qak, nonce);
    EXPECT_TRUE(bk) << bk.error().message;
    binding_ = *bk;
    protocol::AttestRequest r;
    r.device_id = device;
    r.nonce = nonce;
    r.quote = {quote->attest, quote->signature};
    r.pcr_selection = o.requested;
    r.boot_log = o.boot_log != nullptr ? *o.boot_log : boot_.bytes;
    r.binding_key = {bk->public_area, {bk->certify_attest, bk->certify_signature}};
    r.ima = o.ima;
    const std::string jwk = json::serialize(session_.public_jwk().to_json());
    auto jkt = base64url_decode(session_.public_jwk().thumbprint());
    auto sig = tpm_api().sign(*bk, ossl::sha256(protocol::session_key_signed_bytes(nonce, *jkt)));
    EXPECT_TRUE(sig) << sig.error().message;
    r.session_key = protocol::SessionKey{jwk, tpmt_signature(*sig)};
    return r;
  }

  protocol::AttestResponse attest(const protocol::AttestRequest& r) {
    auto out = service_->attest(r, protocol::encode(r));
    EXPECT_TRUE(out) << out.error().message;
    return out ? *out : protocol::AttestResponse{};
  }

  protocol::TokenRequest token_request(const Bytes& device_token, std::uint32_t uid = 1000,
                                       std::string audience = "https://api.test") {
    protocol::TokenRequest r;
    r.device_token = device_token;
    auto proof = token::create_proof(session_, {"POST", kTokenUrl, std::nullopt, std::nullopt},
                                     clock_.unix_now(), random_);
    EXPECT_TRUE(proof) << proof.error().message;
    r.proof = *proof;
    r.selectors.uid = uid;
    r.selectors.systemd_unit = "web-frontend.service";
    r.audience = std::move(audience);
    r.scopes = {"read"};
    r.ttl = 600;
    return r;
  }

  Result<protocol::TokenResponse> token(const protocol::TokenRequest& r) {
    return service_->token(r, {"POST", kTokenUrl});
  }

  // A device that has attested successfully; returns its device token.
  Bytes attested_device(std::string& device) {
    device = enroll_device();
    auto response = attest(attest_request(device, challenge(device)));
    EXPECT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
    return response.device_token.value_or(Bytes{});
  }

  std::uint64_t status_list_bits_ = 1U << 17;
  test::TempDir dir_{"warden-issuer-svc"};
  FakeClock clock_;
  SystemRandom random_;
  IssuerConfig config_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<SigningKeys> keys_;
  std::unique_ptr<SealAuthority> seal_;
  std::unique_ptr<IssuerService> service_;
  BootLog boot_;
  tpm::AkBlob ak_;
  tpm::BindingKey binding_;
  token::EcSigner session_ = *token::EcSigner::generate(random_);
};

TEST_F(IssuerServiceTest, EnrollAttestTokenVerifyRevokeAndStatusList) {
  ASSERT_TRUE(service_->ready());
  const std::string device = enroll_device();
  ASSERT_FALSE(device.empty());
  const Bytes nonce = challenge(device);
  ASSERT_EQ(nonce.size(), NonceIssuer::kSize);

  auto attested = attest(attest_request(device, nonce));
  ASSERT_EQ(attested.verdict, Verdict::kPass) << reasons_text(attested);
  EXPECT_EQ(attested.policy_version, "p1");
  ASSERT_TRUE(attested.device_token && attested.expires_at);
  EXPECT_EQ(*attested.expires_at,
            static_cast<std::uint64_t>(clock_.unix_now() + config_.tokens.device_token_ttl_s));

  auto minted = token(token_request(*attested.device_token));
  ASSERT_TRUE(minted) << minted.error().message;
  ASSERT_TRUE(std::holds_alternative<std::string>(minted->token));
  EXPECT_LE(minted->expires_at, static_cast<std::uint64_t>(clock_.unix_now() + 120));

  // A relying party verifies the JWT with the published JWKS.
  auto jwks = service_->jwks_json();
  ASSERT_TRUE(jwks) << jwks.error().message;
  auto keys = token::KeySet::from_json(*jwks);
  ASSERT_TRUE(keys) << keys.error().message;
  token::JwtVerifyOptions opts;
  opts.checks.now = clock_.unix_now();
  opts.checks.audience = "https://api.test";
  opts.typ = std::string(token::kTypWorkload);
  auto jwt = token::verify_jwt(std::get<std::string>(minted->token), *keys, opts);
  ASSERT_TRUE(jwt) << jwt.error().message;
  EXPECT_EQ(jwt->claims.jti, minted->jti);
  EXPECT_EQ(jwt->claims.device_id, device);
  EXPECT_EQ(jwt->claims.scope, "read");
  ASSERT_TRUE(jwt->claims.cnf && jwt->claims.cnf->jkt);
  EXPECT_EQ(*jwt->claims.cnf->jkt, session_.public_jwk().thumbprint());
  ASSERT_TRUE(jwt->claims.workload);
  EXPECT_EQ(jwt->claims.workload->uid, 1000U);
  EXPECT_FALSE(jwt->claims.workload->image_ref);  // a host process has no image
  ASSERT_TRUE(jwt->claims.status);
  EXPECT_EQ(jwt->claims.status->idx, minted->status_index);
  EXPECT_EQ(jwt->claims.status->uri, "https://issuer.test:8443/v1/status/1");

  auto list_before = service_->status_list_jwt("1");
  ASSERT_TRUE(list_before) << list_before.error().message;
  auto valid = token::verify_status_list_jwt(*list_before, *keys, clock_.unix_now());
  ASSERT_TRUE(valid) << valid.error().message;
  EXPECT_TRUE(token::check_status(jwt->claims, *valid));

  // The device revokes its tokens, signing with the TPM binding key.
  protocol::RevokeRequest revoke;
  revoke.device_id = device;
  revoke.reason = "posture change: new kernel module";
  revoke.timestamp = static_cast<std::uint64_t>(clock_.unix_now());
  auto sig = tpm_api().sign(binding_, ossl::sha256(protocol::revoke_signed_bytes(revoke)));
  ASSERT_TRUE(sig) << sig.error().message;
  revoke.signature = tpmt_signature(*sig);
  auto revoked = service_->revoke(revoke);
  ASSERT_TRUE(revoked) << revoked.error().message;
  EXPECT_EQ(revoked->revoked, 1U);
  auto again = service_->revoke(revoke);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, ErrorCode::kReplay);
  // Says what was replayed: a revoke, not a DPoP proof's jti.
  EXPECT_NE(again.error().message.find("revoke: already applied"), std::string::npos)
      << again.error().message;
  EXPECT_EQ(again.error().message.find("jti"), std::string::npos) << again.error().message;
  // Another replica (a fresh service on the same store) refuses it too.
  open_issuer();
  auto elsewhere = service_->revoke(revoke);
  ASSERT_FALSE(elsewhere);
  EXPECT_EQ(elsewhere.error().code, ErrorCode::kReplay) << elsewhere.error().message;
  // A stale or tampered request is refused.
  auto stale = revoke;
  stale.timestamp -= 301;
  EXPECT_EQ(service_->revoke(stale).error().code, ErrorCode::kExpired);
  auto tampered = revoke;
  tampered.timestamp += 1;
  EXPECT_EQ(service_->revoke(tampered).error().code, ErrorCode::kBadSignature);

  auto list_after = service_->status_list_jwt("1");
  ASSERT_TRUE(list_after);
  auto flipped = token::verify_status_list_jwt(*list_after, *keys, clock_.unix_now());
  ASSERT_TRUE(flipped);
  auto status = token::check_status(jwt->claims, *flipped);
  ASSERT_FALSE(status);
  EXPECT_EQ(status.error().code, ErrorCode::kRevoked);

  // After reporting a posture change the device gets no tokens until it attests again.
  auto refused = token(token_request(*attested.device_token));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPolicyViolation);

  // Every decision is in the audit log.
  auto audit = admin_json(service_->admin_audit({device, std::nullopt, 50}));
  ASSERT_TRUE(audit);
  for (const char* action : {"\"activate\"", "\"attest\"", "\"token\"", "\"revoke\""})
    EXPECT_NE(audit->find(action), std::string::npos) << action << " in " << *audit;
}

TEST_F(IssuerServiceTest, CwtTokenAndAdminViews) {
  std::string device;
  const Bytes device_token = attested_device(device);
  auto request = token_request(device_token);
  request.format = protocol::TokenFormat::kCwt;
  auto minted = token(request);
  ASSERT_TRUE(minted) << minted.error().message;
  ASSERT_TRUE(std::holds_alternative<Bytes>(minted->token));
  auto keys = token::KeySet::from_json(*service_->jwks_json());
  auto cwt = token::verify_cwt(std::get<Bytes>(minted->token), *keys,
                               {clock_.unix_now(), 60, std::string("https://api.test"), true});
  ASSERT_TRUE(cwt) << cwt.error().message;
  EXPECT_EQ(cwt->claims.jti, minted->jti);

  auto one = admin_json(service_->admin_get_device(device));
  ASSERT_TRUE(one) << one.error().message;
  auto parsed = json::parse_object(*one);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(json::get_string(*parsed, "last_verdict"), "accept");
  // The owner_label the device sent is a request; no admin has placed it in a group.
  EXPECT_TRUE(parsed->at("group").is_null());
  EXPECT_EQ(json::get_string(*parsed, "requested_group"), "edge");
  EXPECT_EQ(parsed->at("live_tokens").as_array().size(), 1U);
  auto all = admin_json(service_->admin_list_devices(10, ""));
  ASSERT_TRUE(all);
  EXPECT_NE(all->find(device), std::string::npos);
  auto policies = admin_json(service_->admin_list_policies());
  ASSERT_TRUE(policies);
  EXPECT_NE(policies->find("\"version\":\"p1\""), std::string::npos);
}

class SmallStatusListTest : public IssuerServiceTest {
 protected:
  SmallStatusListTest() { status_list_bits_ = 2; }
};

TEST_F(SmallStatusListTest, FullStatusListIsFollowedByTheNext) {
  std::string device;
  const Bytes device_token = attested_device(device);
  std::vector<protocol::TokenResponse> minted;
  for (int i = 0; i < 3; ++i) {
    auto t = token(token_request(device_token));
    ASSERT_TRUE(t) << t.error().message;
    minted.push_back(*t);
  }
  EXPECT_EQ(minted[2].status_index, 0U);
  auto keys = token::KeySet::from_json(*service_->jwks_json());
  token::JwtVerifyOptions opts;
  opts.checks.now = clock_.unix_now();
  auto third = token::verify_jwt(std::get<std::string>(minted[2].token), *keys, opts);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->claims.status->uri, "https://issuer.test:8443/v1/status/2");
  // A restarted issuer continues with the newest list.
  open_issuer();
  auto fourth = token(token_request(device_token));
  ASSERT_TRUE(fourth) << fourth.error().message;
  EXPECT_EQ(fourth->status_index, 1U);
  EXPECT_TRUE(service_->status_list_jwt("2"));
}

TEST_F(IssuerServiceTest, ReplayedNonceIsRefused) {
  const std::string device = enroll_device();
  auto request = attest_request(device, challenge(device));
  ASSERT_EQ(attest(request).verdict, Verdict::kPass);
  auto replayed = attest(request);
  EXPECT_EQ(replayed.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(replayed, "replay")) << reasons_text(replayed);
  EXPECT_FALSE(replayed.device_token);
}

TEST_F(IssuerServiceTest, EvidenceHashIsOfTheRequestAsReceived) {
  const std::string device = enroll_device();
  const auto request = attest_request(device, challenge(device));
  // Any bytes the caller says it received: the service hashes them, it does not re-encode.
  const Bytes received = to_bytes("the attest request's CBOR as it arrived");
  auto out = service_->attest(request, received);
  ASSERT_TRUE(out) << out.error().message;
  ASSERT_EQ(out->verdict, Verdict::kPass) << reasons_text(*out);
  const std::string expected = hex_encode(ossl::sha256(received));
  ASSERT_NE(expected, hex_encode(ossl::sha256(protocol::encode(request))));
  auto audit = admin_json(service_->admin_audit({device, std::nullopt, 10}));
  ASSERT_TRUE(audit) << audit.error().message;
  EXPECT_NE(audit->find(expected), std::string::npos) << *audit;
}

TEST_F(IssuerServiceTest, ExpiredNonceIsRefused) {
  const std::string device = enroll_device();
  const Bytes nonce = challenge(device);
  clock_.advance(std::chrono::seconds(config_.tokens.nonce_ttl_s + 1));
  auto response = attest(attest_request(device, nonce));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "expired")) << reasons_text(response);
}

TEST_F(IssuerServiceTest, QuoteByAnotherAkIsRefused) {
  const std::string device = enroll_device();
  auto other = tpm_api().create_ak();
  ASSERT_TRUE(other);
  AttestOptions o;
  o.quote_ak = &*other;
  auto response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "bad_signature")) << reasons_text(response);
  // Unauthenticated evidence is audited but does not change the device's record.
  auto d = store_->get_device(device);
  EXPECT_EQ(d->last_verdict, "");
}

TEST_F(IssuerServiceTest, QuoteOverOtherPcrsThanRequestedIsRefused) {
  const std::string device = enroll_device();
  AttestOptions o;
  o.quoted = "sha256:1,2,3";
  auto response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "pcr_selection_mismatch")) << reasons_text(response);
  // Asking for fewer PCRs than the policy names is refused too.
  o.requested = o.quoted;
  response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "pcr_selection_mismatch")) << reasons_text(response);
}

TEST_F(IssuerServiceTest, BootLogThatDoesNotReplayIsRefused) {
  const std::string device = enroll_device();
  const Bytes forged = make_boot_log("warden-test-crtm-2").bytes;
  AttestOptions o;
  o.boot_log = &forged;
  auto response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "replay_mismatch")) << reasons_text(response);
  EXPECT_EQ(store_->get_device(device)->last_verdict, "reject");
}

tpm::PolicyApproval tpm_approval(const attest::tpm_policy::ApprovedPolicy& a) {
  return {a.selection, a.approved_policy, a.policy_ref, a.signature, std::nullopt};
}

// Issue 26 end to end on swtpm: a secret sealed to the issuer's authority survives an update of
// a boot PCR once the issuer appraised the new boot; a boot it refuses gets no approval.
TEST_F(IssuerServiceTest, SealedSecretFollowsIssuerApprovedBootStates) {
  namespace tp = attest::tpm_policy;
  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  ak_ = *ak;
  auto enrolled = service_->enroll(enroll_request(ak_));
  ASSERT_TRUE(enrolled) << enrolled.error().message;
  ASSERT_TRUE(enrolled->seal_authority);
  EXPECT_EQ(*enrolled->seal_authority, seal_->public_area());
  const Bytes authority = *enrolled->seal_authority;
  auto secret =
      tpm_api().activate_credential(ak_, enrolled->credential_blob, enrolled->encrypted_secret);
  ASSERT_TRUE(secret);
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak_.name());
  auto activated = service_->activate(enrolled->enrollment_id, {enrolled->enrollment_id, *proof});
  ASSERT_TRUE(activated) << activated.error().message;
  const std::string device = activated->device_id;

  auto attest_sealing = [&](const Bytes& log) {
    AttestOptions o;
    o.boot_log = &log;
    auto r = attest_request(device, challenge(device), o);
    r.seal_pcrs = "sha256:0,4";
    return attest(r);
  };
  auto approval_of = [](const protocol::AttestResponse& r) {
    auto parsed = tp::ApprovedPolicy::parse(*r.approved_policy);
    EXPECT_TRUE(parsed) << parsed.error().message;
    return *parsed;
  };

  auto first = attest_sealing(boot_.bytes);
  ASSERT_EQ(first.verdict, Verdict::kPass) << reasons_text(first);
  ASSERT_TRUE(first.approved_policy);
  const tp::ApprovedPolicy before = approval_of(first);
  EXPECT_TRUE(tp::verify_approval(before, authority));
  EXPECT_EQ(before.policy_ref, tp::epoch_policy_ref(0));

  const Bytes data = to_bytes("db-password");
  auto blob = tpm_api().seal_authorized(authority, tp::epoch_policy_ref(0), data);
  ASSERT_TRUE(blob) << blob.error().message;
  auto opened = tpm_api().unseal_authorized(*blob, tpm_approval(before));
  ASSERT_TRUE(opened) << opened.error().message;
  EXPECT_EQ(Bytes(opened->view().begin(), opened->view().end()), data);

  // A boot loader update: one more event in PCR 4, in the log and in the TPM.
  const Bytes loader = to_bytes("grub 2.12");
  ByteWriter w;
  w.bytes(boot_.bytes).u32le(4).u32le(ev::kEvIpl).u32le(1).u16le(0x0B).bytes(ossl::sha256(loader));
  w.u32le(static_cast<std::uint32_t>(loader.size())).bytes(loader);
  const Bytes updated_log = std::move(w).take();
  ASSERT_TRUE(tpm_api().extend_pcr(4, TpmAlg::kSha256, ossl::sha256(loader)));
  auto stale = tpm_api().unseal_authorized(*blob, tpm_approval(before));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kPolicyViolation) << stale.error().message;

  // The old log no longer replays: refused, and no approval of the new values.
  auto refused = attest_sealing(boot_.bytes);
  EXPECT_EQ(refused.verdict, Verdict::kFail);
  EXPECT_FALSE(refused.approved_policy);

  auto again = attest_sealing(updated_log);
  ASSERT_EQ(again.verdict, Verdict::kPass) << reasons_text(again);
  ASSERT_TRUE(again.approved_policy);
  const tp::ApprovedPolicy after = approval_of(again);
  EXPECT_NE(after.approved_policy, before.approved_policy);
  auto reopened = tpm_api().unseal_authorized(*blob, tpm_approval(after));
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(Bytes(reopened->view().begin(), reopened->view().end()), data);

  // A forged approval (another key signed the same policy) is refused by the TPM.
  auto other =
      SealAuthority::from_key(std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-256"), EVP_PKEY_free));
  ASSERT_TRUE(other);
  attest::PcrValues now_values;
  now_values.init_bank(TpmAlg::kSha256);
  for (std::size_t i = 0; i < after.pcr_values.size(); ++i)
    ASSERT_TRUE(now_values.set(TpmAlg::kSha256, i == 0 ? 0 : 4, after.pcr_values[i]));
  auto forged = (*other)->approve(after.selection, now_values);
  ASSERT_TRUE(forged);
  EXPECT_EQ(forged->approved_policy, after.approved_policy);
  auto refused_forgery = tpm_api().unseal_authorized(*blob, tpm_approval(*forged));
  ASSERT_FALSE(refused_forgery);
  EXPECT_EQ(refused_forgery.error().code, ErrorCode::kBadSignature)
      << refused_forgery.error().message;
}

TEST(SealAuthority, IsMadeOnceAndKeptPrivate) {
  test::TempDir dir("warden-seal-authority");
  auto first = SealAuthority::open(dir.path() / "keys");
  ASSERT_TRUE(first) << first.error().message;
  auto again = SealAuthority::open(dir.path() / "keys");
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ((*first)->public_area(), (*again)->public_area());  // never rotates
  const auto perms =
      std::filesystem::status(dir.path() / "keys" / "seal-authority.pem").permissions();
  EXPECT_EQ(perms & std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  ASSERT_TRUE(write_file_atomic(dir.path() / "bad.pem", to_bytes("not a key"), 0600));
  std::filesystem::create_directories(dir.path() / "bad");
  std::filesystem::rename(dir.path() / "bad.pem", dir.path() / "bad" / "seal-authority.pem");
  EXPECT_FALSE(SealAuthority::open(dir.path() / "bad"));
}

TEST_F(IssuerServiceTest, SealPcrsOutsideTheQuoteGetNoApproval) {
  const std::string device = enroll_device();
  auto r = attest_request(device, challenge(device));
  r.seal_pcrs = "sha256:0,16";
  auto response = attest(r);
  ASSERT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
  EXPECT_FALSE(response.approved_policy);
  EXPECT_TRUE(has_reason(response, "no_seal_approval")) << reasons_text(response);
  r = attest_request(device, challenge(device));
  r.seal_pcrs.reset();
  EXPECT_FALSE(attest(r).approved_policy);  // not asked for
}

TEST_F(IssuerServiceTest, BootLogFailingPolicyIsRefusedWithEveryReason) {
  const std::string device = enroll_device();
  const std::string extra = "[boot]\ndenied_digests = [\"" +
                            hex_encode(ossl::sha256(to_bytes("warden-test-crtm-1"))) + "\"]\n";
  auto put = service_->admin_put_policy("p2", policy_toml("p2", Bytes(32, 0xee), extra), "admin");
  ASSERT_TRUE(put) << put.error().message;
  auto response = attest(attest_request(device, challenge(device)));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_EQ(response.policy_version, "p2");
  EXPECT_TRUE(has_reason(response, "boot.denied_digest")) << reasons_text(response);
  EXPECT_TRUE(has_reason(response, "pcr.mismatch")) << reasons_text(response);
  EXPECT_FALSE(response.device_token);
}

TEST_F(IssuerServiceTest, DisallowedWorkloadGetsNoToken) {
  std::string device;
  const Bytes device_token = attested_device(device);
  auto wrong_uid = token(token_request(device_token, 0));
  ASSERT_FALSE(wrong_uid);
  EXPECT_EQ(wrong_uid.error().code, ErrorCode::kPermissionDenied);
  auto wrong_audience = token(token_request(device_token, 1000, "https://other.test"));
  ASSERT_FALSE(wrong_audience);
  EXPECT_EQ(wrong_audience.error().code, ErrorCode::kAudienceMismatch);
  auto scopes = token_request(device_token);
  scopes.scopes = {"read", "admin"};
  auto wrong_scope = token(scopes);
  ASSERT_FALSE(wrong_scope);
  EXPECT_EQ(wrong_scope.error().code, ErrorCode::kPolicyViolation);
  // A proof replayed, or by another key, is refused.
  auto request = token_request(device_token);
  ASSERT_TRUE(token(request));
  EXPECT_EQ(token(request).error().code, ErrorCode::kReplay);
  session_ = *token::EcSigner::generate(random_);
  EXPECT_EQ(token(token_request(device_token)).error().code, ErrorCode::kProofMismatch);
}

TEST_F(IssuerServiceTest, RevokedDeviceIsRefusedAndItsTokensFlipped) {
  std::string device;
  const Bytes device_token = attested_device(device);
  auto minted = token(token_request(device_token));
  ASSERT_TRUE(minted) << minted.error().message;
  ASSERT_TRUE(service_->admin_set_device_state(device, "revoked", "alice"));
  auto refused = token(token_request(device_token));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kRevoked);
  auto c = service_->challenge({device});
  ASSERT_FALSE(c);
  EXPECT_EQ(c.error().code, ErrorCode::kRevoked);
  auto list = store_->get_status_list("1");
  ASSERT_TRUE(list);
  const unsigned byte = list->bytes[minted->status_index / 8];
  EXPECT_EQ((byte >> (minted->status_index % 8)) & 1U, 1U);
  EXPECT_EQ(service_->admin_set_device_state(device, "paused", "alice").error().code,
            ErrorCode::kInvalidArgument);
}

TEST_F(IssuerServiceTest, UntrustedEkIsRefusedUnlessAllowlistedOrTofu) {
  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak);
  // Without the intermediate the chain does not reach the configured root.
  auto no_chain = service_->enroll(enroll_request(*ak, false));
  ASSERT_FALSE(no_chain);
  EXPECT_EQ(no_chain.error().code, ErrorCode::kUntrusted) << no_chain.error().message;

  config_.enrollment.manufacturer_ca_files.clear();
  open_issuer();
  auto request = enroll_request(*ak);
  auto untrusted = service_->enroll(request);
  ASSERT_FALSE(untrusted);
  EXPECT_EQ(untrusted.error().code, ErrorCode::kUntrusted);

  config_.enrollment.ek_allowlist = {hex_encode(ossl::sha256(request.ek_public))};
  open_issuer();
  EXPECT_TRUE(service_->enroll(request));

  config_.enrollment.ek_allowlist.clear();
  config_.enrollment.tofu = true;
  open_issuer();
  EXPECT_TRUE(service_->enroll(request));

  // A certificate for another key never enrolls, whatever the fallbacks.
  auto p384 = tpm_api().endorsement_key(tpm::EkTemplate::kEccP384H3);
  ASSERT_TRUE(p384) << p384.error().message;
  request.ek_cert = p384->certificate;
  auto mismatch = service_->enroll(request);
  ASSERT_FALSE(mismatch);
  EXPECT_EQ(mismatch.error().code, ErrorCode::kProofMismatch);
}

TEST_F(IssuerServiceTest, AkMustBeARestrictedSigningKeyNamedCorrectly) {
  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak);
  // A TPM key that is not restricted (the binding key) cannot be an AK.
  auto unrestricted = tpm_api().create_binding_key(*ak, Bytes(32, 1));
  ASSERT_TRUE(unrestricted) << unrestricted.error().message;
  auto request = enroll_request(*ak);
  request.ak_public = unrestricted->public_area;
  auto refused = service_->enroll(request);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPolicyViolation) << refused.error().message;

  request = enroll_request(*ak);
  request.ak_name.back() ^= 1;
  auto misnamed = service_->enroll(request);
  ASSERT_FALSE(misnamed);
  EXPECT_EQ(misnamed.error().code, ErrorCode::kProofMismatch);

  // An EK enrolls once.
  ASSERT_TRUE(service_->enroll(enroll_request(*ak)));
  const std::string device = enroll_device();
  ASSERT_FALSE(device.empty());
  auto twice = service_->enroll(enroll_request(*ak));
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kAlreadyExists);
  // Anyone holding the (public) EK certificate can ask: the answer must not name the device.
  EXPECT_EQ(twice.error().message.find(device), std::string::npos) << twice.error().message;
}

TEST_F(IssuerServiceTest, BadActivationProofIsRefusedAndEnrollmentConsumed) {
  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak);
  auto enrolled = service_->enroll(enroll_request(*ak));
  ASSERT_TRUE(enrolled) << enrolled.error().message;
  auto bad = service_->activate(enrolled->enrollment_id, {enrolled->enrollment_id, Bytes(32, 7)});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, ErrorCode::kProofMismatch);
  // The real proof is now too late: one attempt per enrollment.
  auto secret =
      tpm_api().activate_credential(*ak, enrolled->credential_blob, enrolled->encrypted_secret);
  ASSERT_TRUE(secret);
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak->name());
  auto late = service_->activate(enrolled->enrollment_id, {enrolled->enrollment_id, *proof});
  ASSERT_FALSE(late);
  EXPECT_EQ(late.error().code, ErrorCode::kNotFound);
  auto mismatched = service_->activate("other-id", {enrolled->enrollment_id, *proof});
  EXPECT_EQ(mismatched.error().code, ErrorCode::kInvalidArgument);
}

// Bytes of the SQLite database and its WAL, where a local reader of the files would look.
std::string database_bytes(const std::filesystem::path& db) {
  std::string out;
  for (const char* suffix : {"", "-wal"}) {
    auto bytes = read_file(db.string() + suffix, 64 << 20);
    if (bytes) out += warden::to_string(*bytes);
  }
  return out;
}

// A copy of the store must not let anyone activate a pending enrollment: it holds a digest of
// the expected proof, never the proof (issue 28: a local user polled issuer.db and activated a
// fresh agent's enrollment first).
TEST_F(IssuerServiceTest, ActivationProofIsStoredOnlyAsADigest) {
  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak);
  auto enrolled = service_->enroll(enroll_request(*ak));
  ASSERT_TRUE(enrolled) << enrolled.error().message;
  auto secret =
      tpm_api().activate_credential(*ak, enrolled->credential_blob, enrolled->encrypted_secret);
  ASSERT_TRUE(secret) << secret.error().message;
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak->name());
  ASSERT_TRUE(proof);
  const std::string stored = database_bytes(dir_.path() / "issuer.db");
  ASSERT_NE(stored.find(enrolled->enrollment_id), std::string::npos) << "the pending row is there";
  EXPECT_EQ(stored.find(warden::to_string(*proof)), std::string::npos) << "the raw proof is stored";
  EXPECT_EQ(stored.find(warden::to_string(secret->view())), std::string::npos);
  // The right proof still activates.
  auto activated = service_->activate(enrolled->enrollment_id, {enrolled->enrollment_id, *proof});
  ASSERT_TRUE(activated) << activated.error().message;
  EXPECT_FALSE(activated->device_id.empty());
  // Presenting what the store holds is refused like any wrong proof.
  ASSERT_TRUE(service_->admin_delete_device(activated->device_id, "test"));
  auto again = service_->enroll(enroll_request(*ak));
  ASSERT_TRUE(again) << again.error().message;
  auto pending = store_->take_enrollment(again->enrollment_id);
  ASSERT_TRUE(pending);
  ASSERT_TRUE(store_->put_enrollment(*pending, 100));
  auto forged =
      service_->activate(again->enrollment_id, {again->enrollment_id, pending->secret_hash});
  ASSERT_FALSE(forged);
  EXPECT_EQ(forged.error().code, ErrorCode::kProofMismatch);
}

// DELETE /admin/v1/devices/{id}: what docs/operations.md tells an admin to do when an EK must
// enroll again. Its tokens fail status checks, its device token stops working, it is audited,
// and the same EK then enrolls as a new device.
TEST_F(IssuerServiceTest, DeletedDeviceLosesItsTokensAndItsEkEnrollsAgain) {
  std::string device;
  const Bytes device_token = attested_device(device);
  auto minted = token(token_request(device_token));
  ASSERT_TRUE(minted) << minted.error().message;
  const auto twice = service_->enroll(enroll_request(ak_));
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code, ErrorCode::kAlreadyExists);

  ASSERT_TRUE(service_->admin_delete_device(device, "uid 0"));
  EXPECT_EQ(service_->admin_delete_device(device, "uid 0").error().code, ErrorCode::kNotFound);
  auto list = store_->get_status_list("1");
  ASSERT_TRUE(list);
  const unsigned byte = list->bytes[minted->status_index / 8];
  EXPECT_EQ((byte >> (minted->status_index % 8)) & 1U, 1U) << "the device's live token is revoked";
  auto refused = token(token_request(device_token));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->challenge({device}).error().code, ErrorCode::kNotFound);
  auto audit = admin_json(service_->admin_audit({device, std::nullopt, 10}));
  ASSERT_TRUE(audit);
  EXPECT_NE(audit->find("\"admin.device_delete\""), std::string::npos) << *audit;
  EXPECT_NE(audit->find("\"actor\":\"uid 0\""), std::string::npos) << *audit;

  const std::string again = enroll_device();
  ASSERT_FALSE(again.empty());
  EXPECT_NE(again, device);
}

// Junk evidence for a known device id, 2,000 times: a bounded number of audit rows, one summary
// of the rest, short records, and the device itself still attests.
TEST_F(IssuerServiceTest, RefusalFloodForADeviceIsAuditedBoundedly) {
  const std::string device = enroll_device();
  ASSERT_FALSE(device.empty());
  protocol::AttestRequest junk;
  junk.device_id = device;
  junk.nonce = Bytes(32, 1);
  junk.quote = {Bytes(64, 2), Bytes(64, 3)};
  junk.pcr_selection = kFullSelection;
  junk.boot_log = Bytes(2000, 'x');
  constexpr int kFlood = 2000;
  for (int i = 0; i < kFlood; ++i) {
    auto r = service_->attest(junk, protocol::encode(junk));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->verdict, Verdict::kFail);
  }
  auto rows = store_->query_audit({device, std::nullopt, 5000});
  ASSERT_TRUE(rows);
  std::size_t attest_rows = 0;
  for (const auto& a : *rows) {
    if (a.action == "attest") {
      ++attest_rows;
      EXPECT_LE(a.reasons_json.size(), 16U * 600U) << "capped reasons";
    }
  }
  EXPECT_GE(attest_rows, 1U);
  EXPECT_LE(attest_rows, static_cast<std::size_t>(config_.limits.refusal_burst) + 2);
  service_->housekeeping();
  rows = store_->query_audit({device, std::nullopt, 5000});
  ASSERT_TRUE(rows);
  const auto summary = std::find_if(rows->begin(), rows->end(), [](const AuditRecord& a) {
    return a.action == "refusals_suppressed";
  });
  ASSERT_NE(summary, rows->end());
  EXPECT_NE(summary->reasons_json.find("refusals suppressed for device " + device),
            std::string::npos)
      << summary->reasons_json;
  EXPECT_LE(rows->size(), attest_rows + 4) << "enroll, activate, the summary";
  // The real device is not locked out by the flood.
  auto response = attest(attest_request(device, challenge(device)));
  EXPECT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
}

// A refused token request records a quoted prefix of the caller's audience, not 1 KiB of it.
TEST_F(IssuerServiceTest, RefusedTokenRecordsAShortQuotedAudience) {
  std::string device;
  const Bytes device_token = attested_device(device);
  const std::string audience = "https://" + std::string(1000, 'a') + "\n";
  auto refused = token(token_request(device_token, 1000, audience));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kAudienceMismatch);
  auto rows = store_->query_audit({device, std::nullopt, 10});
  ASSERT_TRUE(rows);
  ASSERT_FALSE(rows->empty());
  const AuditRecord& last = rows->front();
  EXPECT_EQ(last.action, "token");
  EXPECT_EQ(last.decision, "reject");
  EXPECT_LT(last.reasons_json.size(), 900U) << last.reasons_json;
  EXPECT_EQ(last.reasons_json.find(std::string(200, 'a')), std::string::npos);
  EXPECT_NE(last.reasons_json.find("(1009 bytes)"), std::string::npos) << last.reasons_json;
}

TEST_F(IssuerServiceTest, ImaListIsReplayedIncrementallyAndAppraised) {
  const std::string device = enroll_device();
  auto put = service_->admin_put_policy("",
                                        policy_toml("p-ima", expected_pcr0("warden-test-crtm-1"),
                                                    "[ima]\ndeny_paths = [\"/usr/bin/nc*\"]\n"),
                                        "admin");
  ASSERT_TRUE(put) << put.error().message;
  auto extend = [&](const ImaChunk& chunk) {
    for (const Bytes& d : chunk.extends) ASSERT_TRUE(tpm_api().extend_pcr(10, TpmAlg::kSha256, d));
  };
  AttestOptions o;
  o.requested = o.quoted = "sha256:0,1,2,3,4,5,6,7,10";

  const ImaChunk first = ima_chunk({"/usr/lib/systemd/systemd", "/usr/bin/bash"});
  extend(first);
  o.ima = protocol::ImaLog{0, first.list, protocol::ImaFormat::kBinary};
  auto response = attest(attest_request(device, challenge(device), o));
  ASSERT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
  EXPECT_EQ(response.ima_next_offset, 2U);
  // Only the bank quoted for PCR 10 is replayed and kept: u16 sha256 id + 24 PCRs of 32 bytes.
  auto stored = store_->get_device(device);
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->ima_state.size(), 2U + 24U * 32U);

  // Only the new entries travel; the issuer continues from its stored PCR 10.
  const ImaChunk second = ima_chunk({"/usr/bin/ls", "/usr/sbin/sshd"});
  extend(second);
  o.ima = protocol::ImaLog{2, second.list, protocol::ImaFormat::kBinary};
  response = attest(attest_request(device, challenge(device), o));
  ASSERT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
  EXPECT_EQ(response.ima_next_offset, 4U);

  // The whole list (offset 0, an agent that restarted) is accepted at any time: replayed from
  // the start, it continues the same count.
  Bytes whole = first.list;
  whole.insert(whole.end(), second.list.begin(), second.list.end());
  o.ima = protocol::ImaLog{0, whole, protocol::ImaFormat::kBinary};
  response = attest(attest_request(device, challenge(device), o));
  ASSERT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
  EXPECT_EQ(response.ima_next_offset, 4U);

  // An offset that neither continues the stored state nor starts over is refused; a list from 0
  // that lacks the first entries does not replay to the quote; a denied file is refused.
  const ImaChunk third = ima_chunk({"/usr/bin/ncat"});
  extend(third);
  o.ima = protocol::ImaLog{3, third.list, protocol::ImaFormat::kBinary};
  response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "invalid_argument")) << reasons_text(response);
  o.ima = protocol::ImaLog{0, third.list, protocol::ImaFormat::kBinary};
  response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail) << reasons_text(response);
  EXPECT_TRUE(has_reason(response, "replay_mismatch")) << reasons_text(response);
  o.ima = protocol::ImaLog{4, third.list, protocol::ImaFormat::kBinary};
  response = attest(attest_request(device, challenge(device), o));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "ima.denied")) << reasons_text(response);
  EXPECT_EQ(response.ima_next_offset, 4U);
}

TEST_F(IssuerServiceTest, ResetCountDecreaseIsRefusedAndRebootRecorded) {
  std::string device;
  attested_device(device);
  // Pretend the last attestation saw a later boot than the TPM reports now.
  auto d = store_->get_device(device);
  AttestationUpdate u;
  u.reset_count = *d->reset_count + 5;
  u.restart_count = d->restart_count;
  u.attested_at = d->last_attested_at;
  u.verdict = "accept";
  ASSERT_TRUE(store_->record_attestation(device, u));
  auto response = attest(attest_request(device, challenge(device)));
  EXPECT_EQ(response.verdict, Verdict::kFail);
  EXPECT_TRUE(has_reason(response, "policy_violation")) << reasons_text(response);
  // The refusal does not lower the recorded counter, so the next quote is refused as well.
  EXPECT_EQ(store_->get_device(device)->reset_count, *d->reset_count + 5);
  response = attest(attest_request(device, challenge(device)));
  EXPECT_EQ(response.verdict, Verdict::kFail);

  // A real reboot: resetCount goes up, PCRs start over, and the firmware measures again.
  u.reset_count = d->reset_count;
  ASSERT_TRUE(store_->record_attestation(device, u));
  tpm_->power_cycle();
  for (const auto& [pcr, digest] : boot_.extends)
    ASSERT_TRUE(tpm_api().extend_pcr(pcr, TpmAlg::kSha256, digest));
  response = attest(attest_request(device, challenge(device)));
  EXPECT_EQ(response.verdict, Verdict::kPass) << reasons_text(response);
  EXPECT_GT(*store_->get_device(device)->reset_count, *d->reset_count);
  EXPECT_TRUE(has_reason(response, "reboot"));
}

// The token path caches verified device tokens, device states and the active policy: this
// process's own writes apply to the next request.
TEST_F(IssuerServiceTest, CachesFollowThisProcessesWritesAtOnce) {
  std::string device;
  const Bytes device_token = attested_device(device);
  ASSERT_TRUE(token(token_request(device_token)));

  // A new policy version that no longer grants uid 1000, then one that grants it again.
  const std::string deny_1000 = policy_toml("p-uid", expected_pcr0("warden-test-crtm-1"));
  auto put = service_->admin_put_policy(
      "p-uid",
      deny_1000.substr(0, deny_1000.find("uid = 1000")) + "uid = 2000\n" +
          deny_1000.substr(deny_1000.find("uid = 1000") + std::string("uid = 1000").size()),
      "admin");
  ASSERT_TRUE(put) << put.error().message;
  auto refused = token(token_request(device_token));
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied) << refused.error().message;
  ASSERT_TRUE(service_->admin_put_policy(
      "p3", policy_toml("p3", expected_pcr0("warden-test-crtm-1")), "admin"));
  auto granted = token(token_request(device_token));
  ASSERT_TRUE(granted) << granted.error().message;

  // Revoked and re-enabled through the admin API.
  ASSERT_TRUE(service_->admin_set_device_state(device, "revoked", "alice"));
  EXPECT_EQ(token(token_request(device_token)).error().code, ErrorCode::kRevoked);
  ASSERT_TRUE(service_->admin_set_device_state(device, "enabled", "alice"));
  EXPECT_EQ(token(token_request(device_token)).error().code, ErrorCode::kRevoked);
  clock_.advance(std::chrono::seconds(1));
  const Bytes after_enable =
      attest(attest_request(device, challenge(device))).device_token.value_or(Bytes{});
  ASSERT_TRUE(token(token_request(after_enable)));

  // A failed attestation: the device token it had before no longer buys workload tokens.
  const Bytes forged = make_boot_log("warden-test-crtm-2").bytes;
  AttestOptions o;
  o.boot_log = &forged;
  EXPECT_EQ(attest(attest_request(device, challenge(device), o)).verdict, Verdict::kFail);
  EXPECT_EQ(token(token_request(after_enable)).error().code, ErrorCode::kPolicyViolation);

  // A cached verification never outlives the device token.
  const Bytes fresh =
      attest(attest_request(device, challenge(device))).device_token.value_or(Bytes{});
  ASSERT_TRUE(token(token_request(fresh)));
  clock_.advance(std::chrono::seconds(config_.tokens.device_token_ttl_s + 10));
  EXPECT_EQ(token(token_request(fresh)).error().code, ErrorCode::kExpired);
}

// Another replica (a second service on the same store) changes the policy and revokes the device:
// this one applies both within its cache bounds (1 s for devices, 2 s for the policy).
TEST_F(IssuerServiceTest, AnotherReplicasWritesApplyWithinTheCacheBounds) {
  std::string device;
  const Bytes device_token = attested_device(device);
  ASSERT_TRUE(token(token_request(device_token)));
  IssuerService::Options o;
  o.config = &config_;
  o.store = store_.get();
  o.keys = keys_.get();
  o.clock = &clock_;
  o.random = &random_;
  o.nonce_key = SecretBytes(Bytes(32, 0x42));
  o.issuer_url = "https://issuer.test:8443";
  auto other = IssuerService::create(std::move(o));
  ASSERT_TRUE(other) << other.error().message;

  ASSERT_TRUE((*other)->admin_set_device_state(device, "revoked", "bob"));
  clock_.advance(std::chrono::milliseconds(1100));
  EXPECT_EQ(token(token_request(device_token)).error().code, ErrorCode::kRevoked);
  ASSERT_TRUE((*other)->admin_set_device_state(device, "enabled", "bob"));
  clock_.advance(std::chrono::milliseconds(1100));
  // Enabled again, but the device token from before the revocation stays dead (issue 31).
  EXPECT_EQ(token(token_request(device_token)).error().code, ErrorCode::kRevoked);
  clock_.advance(std::chrono::seconds(1));
  const Bytes fresh =
      attest(attest_request(device, challenge(device))).device_token.value_or(Bytes{});
  ASSERT_TRUE(token(token_request(fresh)));

  ASSERT_TRUE((*other)->admin_put_policy(
      "p9", policy_toml("p9", expected_pcr0("warden-test-crtm-1")), "bob"));
  clock_.advance(std::chrono::milliseconds(2100));
  auto response = attest(attest_request(device, challenge(device)));
  EXPECT_EQ(response.policy_version, "p9") << reasons_text(response);
}

// Issue 32: two replicas (two services on one store) given the same revoke request at once apply
// it once; the other answers replay (the store's unique key, not a search of the audit log).
TEST_F(IssuerServiceTest, ConcurrentReplicasApplyARevokeRequestOnce) {
  std::string device;
  const Bytes device_token = attested_device(device);
  ASSERT_TRUE(token(token_request(device_token)));
  IssuerService::Options o;
  o.config = &config_;
  o.store = store_.get();
  o.keys = keys_.get();
  o.clock = &clock_;
  o.random = &random_;
  o.nonce_key = SecretBytes(Bytes(32, 0x42));
  o.issuer_url = "https://issuer.test:8443";
  auto other = IssuerService::create(std::move(o));
  ASSERT_TRUE(other) << other.error().message;

  protocol::RevokeRequest revoke;
  revoke.device_id = device;
  revoke.reason = "posture change";
  revoke.timestamp = static_cast<std::uint64_t>(clock_.unix_now());
  auto sig = tpm_api().sign(binding_, ossl::sha256(protocol::revoke_signed_bytes(revoke)));
  ASSERT_TRUE(sig) << sig.error().message;
  revoke.signature = tpmt_signature(*sig);
  std::vector<Result<protocol::RevokeResponse>> results(4, fail(ErrorCode::kInternal, "unset"));
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < results.size(); ++i) {
    IssuerService& replica = i % 2 == 0 ? *service_ : **other;
    threads.emplace_back([&replica, &revoke, &results, i] { results[i] = replica.revoke(revoke); });
  }
  for (auto& t : threads) t.join();
  int applied = 0;
  for (const auto& r : results) {
    if (r) {
      ++applied;
      EXPECT_EQ(r->revoked, 1U);
    } else {
      EXPECT_EQ(r.error().code, ErrorCode::kReplay) << r.error().message;
    }
  }
  EXPECT_EQ(applied, 1);
}

// Issue 31: a device chooses its own owner_label, so it must never choose its group. The
// attacker owns a second genuine device (its own swtpm, EK certificate from a configured
// manufacturer CA) and builds its requests itself, naming the group a `match.group` rule grants.
TEST_F(IssuerServiceTest, ADeviceCannotChooseItsGroup) {
  auto second = test::Swtpm::start();
  clock_.set(SystemClock().unix_now());  // its CA was made just now
  config_.enrollment.manufacturer_ca_files.push_back(second->ca_cert().string());
  const std::string payments =
      "[[workload]]\nname = \"payments\"\naudiences = [\"payments\"]\nscopes = [\"pay\"]\n"
      "[workload.match]\ngroup = \"payments-*\"\n";
  open_issuer();  // trusts the second CA
  ASSERT_TRUE(service_->admin_put_policy(
      "p-pay", policy_toml("p-pay", expected_pcr0("warden-test-crtm-1"), payments), "alice"));
  std::swap(tpm_, second);  // the helpers below now drive the attacker's TPM
  for (const auto& [pcr, digest] : boot_.extends)
    ASSERT_TRUE(tpm_api().extend_pcr(pcr, TpmAlg::kSha256, digest));

  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  ak_ = *ak;
  auto request = enroll_request(ak_);
  request.metadata.owner_label = "payments-prod";  // what the rewriting proxy sends
  auto enrolled = service_->enroll(request);
  ASSERT_TRUE(enrolled) << enrolled.error().message;
  auto secret =
      tpm_api().activate_credential(ak_, enrolled->credential_blob, enrolled->encrypted_secret);
  ASSERT_TRUE(secret) << secret.error().message;
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak_.name());
  auto activated = service_->activate(enrolled->enrollment_id, {enrolled->enrollment_id, *proof});
  ASSERT_TRUE(activated) << activated.error().message;
  const std::string device = activated->device_id;
  auto attested = attest(attest_request(device, challenge(device)));
  ASSERT_EQ(attested.verdict, Verdict::kPass) << reasons_text(attested);
  ASSERT_TRUE(attested.device_token);

  auto ask = token_request(*attested.device_token, 2000, "payments");
  ask.scopes = {"pay"};
  auto refused = token(ask);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kPermissionDenied) << refused.error().message;

  // The admin sees what it asked for, and that it is in no group.
  auto listed = admin_json(service_->admin_list_devices(10, ""));
  ASSERT_TRUE(listed) << listed.error().message;
  auto page = json::parse_object(*listed);
  ASSERT_TRUE(page);
  const auto& entry = page->at("devices").as_array().at(0).as_object();
  EXPECT_EQ(json::get_string(entry, "requested_group"), "payments-prod");
  EXPECT_TRUE(entry.at("group").is_null());

  EXPECT_EQ(service_->admin_set_device_group(device, "payments-*", "alice").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_->admin_set_device_group("nope", "payments-prod", "alice").error().code,
            ErrorCode::kNotFound);
  ASSERT_TRUE(service_->admin_set_device_group(device, "payments-prod", "alice"));
  ask = token_request(*attested.device_token, 2000, "payments");
  ask.scopes = {"pay"};
  auto granted = token(ask);
  ASSERT_TRUE(granted) << granted.error().message;
  auto audit = admin_json(service_->admin_audit({device, std::nullopt, 10}));
  ASSERT_TRUE(audit);
  EXPECT_NE(audit->find("admin.device_group"), std::string::npos);
  EXPECT_NE(audit->find("alice"), std::string::npos);

  // Cleared again: nothing.
  ASSERT_TRUE(service_->admin_set_device_group(device, "", "alice"));
  ask = token_request(*attested.device_token, 2000, "payments");
  ask.scopes = {"pay"};
  EXPECT_EQ(token(ask).error().code, ErrorCode::kPermissionDenied);
  std::swap(tpm_, second);
}

// Issue 31: enabling a revoked device does not revive the device token it held: tokens need a
// fresh attestation.
TEST_F(IssuerServiceTest, ReenabledDeviceNeedsAFreshAttestation) {
  std::string device;
  const Bytes before = attested_device(device);
  ASSERT_TRUE(token(token_request(before)));
  clock_.advance(std::chrono::seconds(5));
  ASSERT_TRUE(service_->admin_set_device_state(device, "revoked", "alice"));
  ASSERT_TRUE(service_->admin_set_device_state(device, "enabled", "alice"));
  auto revived = token(token_request(before));
  ASSERT_FALSE(revived);
  EXPECT_EQ(revived.error().code, ErrorCode::kRevoked) << revived.error().message;
  auto shown = admin_json(service_->admin_get_device(device));
  ASSERT_TRUE(shown);
  auto parsed = json::parse_object(*shown);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->at("revoked_at").as_int64(), clock_.unix_now());

  clock_.advance(std::chrono::seconds(1));
  auto fresh = attest(attest_request(device, challenge(device)));
  ASSERT_EQ(fresh.verdict, Verdict::kPass) << reasons_text(fresh);
  ASSERT_TRUE(fresh.device_token);
  auto granted = token(token_request(*fresh.device_token));
  ASSERT_TRUE(granted) << granted.error().message;
  EXPECT_EQ(token(token_request(before)).error().code, ErrorCode::kRevoked);
}

// Issue 31: one pending enrollment per EK; the newest replaces the older one.
TEST_F(IssuerServiceTest, OnePendingEnrollmentPerEk) {
  auto ak = tpm_api().create_ak();
  ASSERT_TRUE(ak) << ak.error().message;
  auto first = service_->enroll(enroll_request(*ak));
  ASSERT_TRUE(first) << first.error().message;
  auto second = service_->enroll(enroll_request(*ak));
  ASSERT_TRUE(second) << second.error().message;
  auto activate = [&](const protocol::EnrollResponse& e) {
    auto secret = tpm_api().activate_credential(*ak, e.credential_blob, e.encrypted_secret);
    EXPECT_TRUE(secret) << secret.error().message;
    auto proof = protocol::activation_proof(secret->view(), e.enrollment_id, ak->name());
    return service_->activate(e.enrollment_id, {e.enrollment_id, *proof});
  };
  auto stale = activate(*first);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code, ErrorCode::kNotFound) << stale.error().message;
  auto activated = activate(*second);
  ASSERT_TRUE(activated) << activated.error().message;
  // And the activation cannot be replayed.
  EXPECT_EQ(activate(*second).error().code, ErrorCode::kNotFound);
}

// Issue 31: one device flooding /v1/token with fresh proofs of its own is refused alone (its
// rate, its own replay cache), and another device, on another TPM, still gets tokens.
TEST_F(IssuerServiceTest, ProofFloodFromOneDeviceRefusesOnlyThatDevice) {
  config_.limits.token_burst = 20;
  config_.limits.token_per_minute = 60;
  auto second = test::Swtpm::start({});
  ASSERT_TRUE(second);
  config_.enrollment.manufacturer_ca_files.push_back(second->ca_cert().string());
  clock_.set(SystemClock().unix_now() + 1);  // the second EK certificate is newer
  open_issuer();
  std::string device_a;
  const Bytes token_a = attested_device(device_a);
  ASSERT_FALSE(token_a.empty());
  token::EcSigner key_a = std::move(session_);

  std::swap(tpm_, second);  // device B runs on the second swtpm
  for (const auto& [pcr, digest] : boot_.extends)
    ASSERT_TRUE(tpm_api().extend_pcr(pcr, TpmAlg::kSha256, digest));
  session_ = *token::EcSigner::generate(random_);
  std::string device_b;
  const Bytes token_b = attested_device(device_b);
  ASSERT_FALSE(token_b.empty());
  ASSERT_NE(device_a, device_b);
  token::EcSigner key_b = std::move(session_);

  session_ = std::move(key_a);
  constexpr int kFlood = 300;
  int minted = 0;
  int limited = 0;
  for (int i = 0; i < kFlood; ++i) {
    auto r = token(token_request(token_a));
    if (r) {
      ++minted;
    } else {
      ASSERT_EQ(r.error().code, ErrorCode::kLimitExceeded) << r.error().message;
      EXPECT_NE(r.error().message.find(device_a), std::string::npos) << r.error().message;
      ++limited;
    }
  }
  EXPECT_GE(minted, 20);
  EXPECT_LE(minted, 40) << "the burst, and what the rate refilled meanwhile";
  EXPECT_EQ(minted + limited, kFlood);

  session_ = std::move(key_b);
  for (int i = 0; i < 5; ++i) {
    auto r = token(token_request(token_b));
    ASSERT_TRUE(r) << "device B refused while A floods: " << r.error().message;
  }
  // A replayed proof of B is still a replay, and B's proof does not serve A's device token.
  auto request = token_request(token_b);
  ASSERT_TRUE(token(request));
  EXPECT_EQ(token(request).error().code, ErrorCode::kReplay);
  EXPECT_EQ(token(token_request(token_a)).error().code, ErrorCode::kProofMismatch);
}

// Issue 31: htu names the configured issuer_url (or an alias), never the request's Host.
TEST_F(IssuerServiceTest, ProofHtuMustNameTheConfiguredIssuerUrl) {
  config_.issuer_url_aliases = {"https://issuer.internal:8443/"};
  open_issuer();
  std::string device;
  const Bytes device_token = attested_device(device);
  auto with_htu = [&](const std::string& htu) {
    auto r = token_request(device_token);
    auto proof = token::create_proof(session_, {"POST", htu, std::nullopt, std::nullopt},
                                     clock_.unix_now(), random_);
    EXPECT_TRUE(proof) << proof.error().message;
    r.proof = *proof;
    return r;
  };
  // What the router passed when the client sent "Host: rp.example".
  const RequestTarget forged{"POST", "https://rp.example/v1/token"};
  auto refused = service_->token(with_htu("https://rp.example/v1/token"), forged);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, ErrorCode::kProofMismatch) << refused.error().message;
  auto configured = service_->token(with_htu(kTokenUrl), forged);
  EXPECT_TRUE(configured) << configured.error().message;
  auto alias = service_->token(with_htu("https://issuer.internal:8443/v1/token"), forged);
  EXPECT_TRUE(alias) << alias.error().message;
}

// Issue 30: a container's token names its container and image; a container the agent found no
// image for says so instead of looking like an image-less host process.
TEST_F(IssuerServiceTest, AContainersTokenNamesItsImageOrSaysItIsUnknown) {
  std::string device;
  const Bytes device_token = attested_device(device);
  auto keys = token::KeySet::from_json(*service_->jwks_json());
  ASSERT_TRUE(keys);
  token::JwtVerifyOptions opts;
  opts.checks.now = clock_.unix_now();
  opts.checks.audience = "https://api.test";
  auto workload_of = [&](const protocol::TokenRequest& r) -> token::WorkloadSelectors {
    auto minted = token(r);
    EXPECT_TRUE(minted) << minted.error().message;
    if (!minted) return {};
    auto jwt = token::verify_jwt(std::get<std::string>(minted->token), *keys, opts);
    EXPECT_TRUE(jwt && jwt->claims.workload);
    return jwt && jwt->claims.workload ? *jwt->claims.workload : token::WorkloadSelectors{};
  };
  auto r = token_request(device_token, 2000);
  r.selectors.systemd_unit.reset();
  r.selectors.container_id = std::string(64, 'c');
  r.selectors.container_runtime = "podman";
  const auto unknown = workload_of(r);
  EXPECT_EQ(unknown.container_id, std::string(64, 'c'));
  EXPECT_EQ(unknown.image_ref, "unknown");
  EXPECT_FALSE(unknown.image_digest);

  r = token_request(device_token, 2000);
  r.selectors.systemd_unit.reset();
  r.selectors.container_id = std::string(64, 'd');
  r.selectors.container_runtime = "podman";
  r.selectors.image_ref = "localhost/app:1";
  r.selectors.image_digest = "sha256:" + std::string(64, 'e');
  const auto known = workload_of(r);
  EXPECT_EQ(known.image_ref, "localhost/app:1");
  EXPECT_EQ(known.image_digest, "sha256:" + std::string(64, 'e'));

  // The same uid on the host: the container rule does not match it.
  auto host = token(token_request(device_token, 2000));
  ASSERT_FALSE(host);
  EXPECT_EQ(host.error().code, ErrorCode::kPermissionDenied);
}

// Issue 20: every revocation path writes its Shared Signals events with the revocation: the
// agent's report (all tokens, or the named ones), a failed appraisal after an accepted one, and
// an accepted appraisal after a refused one.
TEST_F(IssuerServiceTest, RevocationPathsWriteTheirSharedSignalsEvents) {
  const std::string revoked_type(token::kEventSessionRevoked);
  const std::string compliance_type(token::kEventDeviceComplianceChange);
  SsfStream stream;
  stream.id = "s1";
  stream.receiver = "rp";
  stream.delivery_method = "urn:ietf:rfc:8936";
  stream.events_requested = stream.events_delivered = {revoked_type, compliance_type};
  stream.aud = "rp";
  ASSERT_TRUE(store_->add_ssf_stream(stream, 16));
  // The events since the last call: (type, payload).
  auto events = [&] {
    std::vector<std::pair<std::string, std::string>> out;
    auto pending = store_->pending_ssf("s1", 100);
    EXPECT_TRUE(pending) << pending.error().message;
    for (const auto& d : *pending) {
      out.emplace_back(d.event.type, d.event.payload_json);
      EXPECT_TRUE(store_->ssf_delivered("s1", d.event.seq, clock_.unix_now()));
    }
    return out;
  };
  auto sign_revoke = [&](protocol::RevokeRequest& r) {
    auto sig = tpm_api().sign(binding_, ossl::sha256(protocol::revoke_signed_bytes(r)));
    ASSERT_TRUE(sig) << sig.error().message;
    r.signature = tpmt_signature(*sig);
  };

  std::string device;
  const Bytes device_token = attested_device(device);
  auto minted = token(token_request(device_token));
  ASSERT_TRUE(minted) << minted.error().message;
  EXPECT_TRUE(events().empty());  // the first acceptance is no change

  // The agent reports a posture change.
  protocol::RevokeRequest revoke;
  revoke.device_id = device;
  revoke.reason = "posture change";
  revoke.timestamp = static_cast<std::uint64_t>(clock_.unix_now());
  sign_revoke(revoke);
  ASSERT_TRUE(service_->revoke(revoke));
  auto after_report = events();
  ASSERT_EQ(after_report.size(), 3U);
  EXPECT_EQ(after_report[0].first, revoked_type);
  EXPECT_NE(after_report[0].second.find(minted->jti), std::string::npos);
  EXPECT_NE(after_report[0].second.find("device report: posture change"), std::string::npos);
  EXPECT_EQ(after_report[1].first, revoked_type);
  EXPECT_EQ(after_report[1].second.find("session"), std::string::npos);
  EXPECT_EQ(after_report[2].first, compliance_type);
  EXPECT_NE(after_report[2].second.find(R"("current_status":"not-compliant")"), std::string::npos);

  // Accepted again after that: compliant.
  clock_.advance(std::chrono::seconds(1));
  auto again = attest(attest_request(device, challenge(device)));
  ASSERT_EQ(again.verdict, Verdict::kPass) << reasons_text(again);
  auto recovered = events();
  ASSERT_EQ(recovered.size(), 1U);
  EXPECT_NE(recovered[0].second.find(R"("current_status":"compliant")"), std::string::npos);

  // The agent revokes one token by its jti.
  auto one = token(token_request(*again.device_token));
  auto other = token(token_request(*again.device_token));
  ASSERT_TRUE(one && other);
  protocol::RevokeRequest named;
  named.device_id = device;
  named.reason = "container stopped";
  named.timestamp = static_cast<std::uint64_t>(clock_.unix_now());
  named.jtis = {one->jti};
  sign_revoke(named);
  ASSERT_TRUE(service_->revoke(named));
  auto named_events = events();
  ASSERT_EQ(named_events.size(), 1U);
  EXPECT_NE(named_events[0].second.find(one->jti), std::string::npos);
  EXPECT_NE(named_events[0].second.find(R"("initiating_entity":"system")"), std::string::npos);

  // A failed appraisal after the accepted one revokes the live tokens.
  const Bytes forged = make_boot_log("warden-test-crtm-2").bytes;
  AttestOptions o;
  o.boot_log = &forged;
  EXPECT_EQ(attest(attest_request(device, challenge(device), o)).verdict, Verdict::kFail);
  EXPECT_TRUE(store_->get_token(other->jti)->revoked);
  auto failed = events();
  ASSERT_EQ(failed.size(), 3U);
  EXPECT_NE(failed[0].second.find(other->jti), std::string::npos);
  EXPECT_NE(failed[0].second.find(R"("initiating_entity":"policy")"), std::string::npos);
  EXPECT_NE(failed[2].second.find(R"("current_status":"not-compliant")"), std::string::npos);
  // Failing again changes nothing more.
  EXPECT_EQ(attest(attest_request(device, challenge(device), o)).verdict, Verdict::kFail);
  EXPECT_TRUE(events().empty());
}

// The agent's revoke report and its events are one transaction: when the events cannot be
// written nothing is revoked, and the same signed request can be sent again.
TEST_F(IssuerServiceTest, AgentRevokeFailsWholeWithoutItsEvents) {
  std::string device;
  const Bytes device_token = attested_device(device);
  auto minted = token(token_request(device_token));
  ASSERT_TRUE(minted);
  protocol::RevokeRequest revoke;
  revoke.device_id = device;
  revoke.reason = "posture change";
  revoke.timestamp = static_cast<std::uint64_t>(clock_.unix_now());
  auto sig = tpm_api().sign(binding_, ossl::sha256(protocol::revoke_signed_bytes(revoke)));
  ASSERT_TRUE(sig);
  revoke.signature = tpmt_signature(*sig);
  auto rename = [&](const char* from, const char* to) {
    auto c = sql::connect_sqlite((dir_.path() / "issuer.db").string());
    ASSERT_TRUE(c);
    ASSERT_TRUE((*c)->exec_script("ALTER TABLE " + std::string(from) + " RENAME TO " + to + ";"));
  };
  rename("ssf_events", "ssf_events_away");
  EXPECT_FALSE(service_->revoke(revoke));
  EXPECT_FALSE(store_->get_token(minted->jti)->revoked);
  EXPECT_EQ(store_->get_device(device)->last_verdict, "accept");
  rename("ssf_events_away", "ssf_events");
  auto applied = service_->revoke(revoke);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(applied->revoked, 1U);
  EXPECT_TRUE(store_->get_token(minted->jti)->revoked);
}

}  // namespace
}  // namespace warden::issuer
