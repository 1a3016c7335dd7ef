#include "agent/agent.h"

#include <sys/utsname.h>

#include <algorithm>
#include <fstream>
#include <unistd.h>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/token/cwt.h"
#include "attest/token/dpop.h"
#include "attest/token/json.h"
#include "attest/token/jwt.h"
#include "attest/token/status_list.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/version.h"

namespace warden::agent {
namespace {

constexpr std::uint32_t kImaPcr = 10;

std::string first_line(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

protocol::DeviceMetadata device_metadata() {
  protocol::DeviceMetadata m;
  char host[256] = {};
  if (::gethostname(host, sizeof(host) - 1) == 0) m.hostname = host;
  m.machine_id = first_line("/etc/machine-id");
  m.agent_version = std::string(version());
  return m;
}

std::optional<std::string> kernel_release() {
  struct utsname u {};
  if (::uname(&u) != 0) return std::nullopt;
  return std::string(u.release);
}

Result<std::optional<Bytes>> read_if_present(const std::filesystem::path& path, std::size_t max) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return std::optional<Bytes>{};
  auto data = read_file(path, max);
  if (!data) return fail(std::move(data).error());
  return std::optional<Bytes>(std::move(*data));
}

// Byte offset of entry `skip` in a binary IMA list (kernel ima_fs.c, ima_measurements_show):
// u32 pcr, 20-byte template digest, u32 name length, name, u32 data length, data.
Result<std::size_t> ima_entry_offset(ByteSpan list, std::uint64_t skip) {
  ByteReader r(list, "IMA measurement list");
  for (std::uint64_t i = 0; i < skip; ++i) {
    if (r.empty()) {
      return fail(ErrorCode::kInvalidArgument, "IMA list: offset " + std::to_string(skip) +
                                                   " past the " + std::to_string(i) +
                                                   " entries present (IMA list reset?)");
    }
    WARDEN_TRY_STATUS(r.skip(4 + 20, "entry header"));
    auto name_len = r.u32le("template name length");
    if (!name_len) return fail(std::move(name_len).error());
    auto name = r.bytes(*name_len, "template name");
    if (!name) return fail(std::move(name).error());
    if (warden::to_string(*name) == "ima") {
      WARDEN_TRY_STATUS(r.skip(20 + 256, "ima template data"));
      continue;
    }
    auto data_len = r.u32le("template data length");
    if (!data_len) return fail(std::move(data_len).error());
    WARDEN_TRY_STATUS(r.skip(*data_len, "template data"));
  }
  return list.size() - r.remaining();
}

std::string token_text(const protocol::TokenResponse& t) {
  if (const auto* s = std::get_if<std::string>(&t.token)) return *s;
  return base64url_encode(std::get<Bytes>(t.token));
}

void set_status_list(std::string_view uri, CachedToken& out) {
  const auto slash = uri.rfind('/');
  out.status_list = std::string(slash == std::string_view::npos ? uri : uri.substr(slash + 1));
}

// The status list reference (RFC draft "status" claim) of a token we were handed: our own
// issuer's, over TLS, so not verified again; only used to know which list to poll and where.
// JWT: the JSON claim; CWT (base64url in the cache): claim 65535 of the COSE_Sign1 payload.
void status_ref(const std::string& text, TokenFormat format, CachedToken& out) {
  if (format == TokenFormat::kJwt) {
    auto jws = token::decode_jws(text);
    if (!jws) return;
    const auto* status = json::get_object(jws->payload, "status");
    const auto* list = status ? json::get_object(*status, "status_list") : nullptr;
    if (list == nullptr) return;
    if (auto uri = json::get_string(*list, "uri")) set_status_list(*uri, out);
    return;
  }
  auto raw = base64url_decode(text);
  if (!raw) return;
  auto msg = token::decode_cose_sign1(*raw);
  if (!msg) return;
  auto payload = cbor::decode(msg->payload, token::kCoseLimits);
  if (!payload) return;
  auto claims = token::claims_from_cbor(*payload);
  if (!claims || !claims->status) return;
  out.status_index = claims->status->idx;
  set_status_list(claims->status->uri, out);
}

protocol::WorkloadSelectors to_protocol(const os::Selectors& s) {
  protocol::WorkloadSelectors w;
  w.uid = s.uid;
  w.gid = s.gid;
  if (!s.systemd_unit.empty()) w.systemd_unit = s.systemd_unit;
  if (!s.container_id.empty()) w.container_id = s.container_id;
  if (!s.container_runtime.empty()) w.container_runtime = s.container_runtime;
  if (!s.exe_path.empty()) w.exe_path = s.exe_path;
  if (!s.exe_sha256.empty()) w.exe_digest = "sha256:" + s.exe_sha256;
  return w;
}

bool issuer_unreachable(const Error& e) {
  return e.code == ErrorCode::kUnavailable || e.code == ErrorCode::kTimeout ||
         e.code == ErrorCode::kIo;
}

// Boot PCRs only: sealing to PCR 10 (IMA) or the container PCR would break on the next
// measurement.
PcrSelection seal_selection(const AgentConfig& c) {
  PcrSelection out;
  for (const PcrBank& b : c.pcrs.banks) {
    if (b.alg != TpmAlg::kSha256) continue;
    PcrBank bank = b;
    bank.pcrs.reset(kImaPcr);
    bank.pcrs.reset(c.container_pcr);
    if (bank.pcrs.any()) out.banks.push_back(bank);
  }
  return out;
}

// Local names: posture::to_string lives with the monitor, which this library may be built without.
std::string_view source_name(posture::Source s) {
  switch (s) {
    case posture::Source::kContainer:
      return "container";
    case posture::Source::kIma:
      return "ima";
    case posture::Source::kPcr:
      return "pcr";
    case posture::Source::kResetCount:
      return "reset count";
    case posture::Source::kConfig:
      return "config";
    case posture::Source::kPolicy:
      return "policy";
    case posture::Source::kStateFile:
      return "state file";
    case posture::Source::kStatusList:
      return "status list";
    case posture::Source::kTpm:
      return "tpm";
  }
  return "unknown";
}

}  // namespace

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      tpm_(options_.config.tcti),
      store_(options_.config.state_dir),
      backoff_(options_.retry_base, options_.retry_max, *options_.random) {}

Agent::~Agent() { shutdown(); }

Result<std::unique_ptr<Agent>> Agent::create(AgentOptions options) {
  if (options.issuer == nullptr || options.clock == nullptr || options.random == nullptr) {
    return fail(ErrorCode::kInvalidArgument, "agent: issuer, clock and random are required");
  }
  auto agent = std::unique_ptr<Agent>(new Agent(std::move(options)));
  agent->since_ = agent->now();
  return agent;
}

AgentState Agent::state() const {
  std::lock_guard lock(mu_);
  return lifecycle_.state();
}

std::uint64_t Agent::attestations() const {
  std::lock_guard lock(mu_);
  return attestations_;
}

void Agent::announce_write(const std::filesystem::path& path) const {
  if (options_.before_state_write) options_.before_state_write(path);
}

std::optional<std::string> Agent::device_id() const {
  std::lock_guard lock(mu_);
  if (!enrollment_) return std::nullopt;
  return enrollment_->device_id;
}

void Agent::publish(std::string kind, const std::string& detail, api::Event owners) {
  if (options_.bus == nullptr) return;
  boost::json::object o;
  o["event"] = std::move(kind);
  o["state"] = std::string(to_string(lifecycle_.state()));
  o["detail"] = detail;
  o["time"] = now();
  owners.line = json::serialize(o);
  if (!owners.uid && !owners.container_id && !owners.workload) {
    o["detail"] = "";
    owners.public_line = json::serialize(o);
  }
  options_.bus->publish(std::move(owners));
}

void Agent::transition(AgentState to, const std::string& reason) {
  const AgentState from = lifecycle_.state();
  if (from == to) {
    reason_ = reason;
    return;
  }
  if (auto t = lifecycle_.transition(to); !t) {
    // A transition the table forbids is a bug here; log it and keep the state we are in.
    spdlog::error("agent: {}", t.error().message);
    return;
  }
  reason_ = reason;
  since_ = now();
  spdlog::info("agent: {} -> {}: {}", to_string(from), to_string(to), reason);
  publish("state", reason);
  if (options_.notifier != nullptr) {
    const std::string line = std::string(to_string(to)) + ": " + reason;
    if (to == AgentState::kServing && !announced_ready_) {
      options_.notifier->ready(line);
      announced_ready_ = true;
    } else {
      options_.notifier->status(line);
    }
  }
}

bool Agent::may_serve_cached() const {
  // Degraded = the issuer is unreachable: what was issued stays usable until it expires.
  const AgentState s = lifecycle_.state();
  return s == AgentState::kServing || s == AgentState::kDegraded;
}

// ---- start, enrollment, attestation -------------------------------------------------------------

Status Agent::start() {
  std::lock_guard lock(mu_);
  if (auto p = store_.prepare(); !p) {
    transition(AgentState::kDegraded, p.error().message);
    return p;
  }
  auto rec = store_.load_enrollment();
  if (!rec) {
    transition(AgentState::kDegraded, rec.error().message);
    return fail(std::move(rec).error());
  }
  if (*rec) {
    enrollment_ = std::move(**rec);
    spdlog::info("agent: resuming enrollment as device {}", enrollment_->device_id);
    auto key = store_.load_binding_key();
    if (key && *key) binding_key_ = std::move(**key);
  }
  if (auto probe = tpm_.probe(); !probe) {
    transition(AgentState::kDegraded, probe.error().message);
    next_retry_ = now() + 1;
    return probe;
  }
  return reattest_locked("start");
}

Status Agent::enroll_locked() {
  auto ek = tpm_.endorsement_key();
  if (!ek) return fail(std::move(ek).error().context("enroll: endorsement key"));
  if (options_.notifier != nullptr) options_.notifier->extend_timeout(std::chrono::seconds(60));
  auto ak = tpm_.create_ak(tpm::AkAlgorithm::kEccP256, ek->ek_template);
  if (!ak) return fail(std::move(ak).error().context("enroll: AK"));

  protocol::EnrollRequest req;
  req.ek_public = ek->public_area;
  if (!ek->certificate.empty()) req.ek_cert = ek->certificate;
  req.ek_chain = ek->chain;
  req.ak_public = ak->public_area;
  req.ak_name = ak->name();
  req.metadata = device_metadata();
  auto enrolled = options_.issuer->enroll(req);
  if (!enrolled) return fail(std::move(enrolled).error().context("enroll"));

  auto secret =
      tpm_.activate_credential(*ak, enrolled->credential_blob, enrolled->encrypted_secret);
  if (!secret) return fail(std::move(secret).error().context("enroll: ActivateCredential"));
  auto proof = protocol::activation_proof(secret->view(), enrolled->enrollment_id, ak->name());
  if (!proof) return fail(std::move(proof).error());
  auto activated = options_.issuer->activate({enrolled->enrollment_id, std::move(*proof)});
  if (!activated) return fail(std::move(activated).error().context("enroll: activate"));

  EnrollmentRecord rec{activated->device_id, std::move(*ak)};
  announce_write(store_.enrollment_path());
  WARDEN_TRY_STATUS(store_.save_enrollment(rec));
  spdlog::info("agent: enrolled as device {}", rec.device_id);
  enrollment_ = std::move(rec);
  binding_key_.reset();
  ima_offset_ = 0;
  return ok();
}

Result<protocol::ImaLog> Agent::read_ima_locked() const {
  auto list = read_if_present(options_.config.ima_log_path(), 256u << 20);
  if (!list) return fail(std::move(list).error());
  protocol::ImaLog out;
  if (!*list) return out;
  std::uint64_t offset = ima_offset_;
  auto at = ima_entry_offset(**list, offset);
  if (!at) {
    // The kernel list restarted (reboot): send it whole; the issuer replays from zero.
    offset = 0;
    at = 0;
  }
  out.offset = offset;
  out.entries.assign((*list)->begin() + static_cast<std::ptrdiff_t>(*at), (*list)->end());
  return out;
}

Status Agent::attest_locked() {
  if (!enrollment_) return fail(ErrorCode::kNotFound, "attest: not enrolled");
  const std::string& device = enrollment_->device_id;
  auto challenge = options_.issuer->challenge({device});
  if (!challenge) return fail(std::move(challenge).error().context("attest: challenge"));
  const Bytes& nonce = challenge->nonce;

  const PcrSelection selection = options_.config.quoted_pcrs();
  protocol::AttestRequest req;
  req.device_id = device;
  req.nonce = nonce;
  req.pcr_selection = selection.to_string();
  // Logs first, quote last: a measurement between the two shows as a replay mismatch and is
  // retried, never as a quote older than its logs.
  auto boot = read_if_present(options_.config.event_log_path(), 1u << 20);
  if (!boot) return fail(std::move(boot).error().context("attest: boot event log"));
  if (*boot) req.boot_log = std::move(**boot);
  if (std::filesystem::exists(options_.config.ima_log_path())) {
    auto ima = read_ima_locked();
    if (!ima) return fail(std::move(ima).error().context("attest: IMA list"));
    req.ima = std::move(*ima);
  }
  auto cel = read_if_present(options_.config.cel_log_path(), 4u << 20);
  if (!cel) return fail(std::move(cel).error().context("attest: container event log"));
  if (*cel) req.cel = std::move(**cel);
  req.kernel_version = kernel_release();

  auto quote = tpm_.quote(enrollment_->ak, selection, nonce);
  if (!quote) return fail(std::move(quote).error().context("attest: quote"));
  req.quote = {std::move(quote->attest), std::move(quote->signature)};

  auto binding = tpm_.create_binding_key(enrollment_->ak, nonce);
  if (!binding) return fail(std::move(binding).error().context("attest: binding key"));
  req.binding_key.public_area = binding->public_area;
  req.binding_key.certify = {binding->certify_attest, binding->certify_signature};

  std::unique_ptr<SessionKey> session;
  if (options_.config.proof_mode == ProofMode::kSession) {
    auto key = SessionKey::generate(*options_.random);
    if (!key) return fail(std::move(key).error());
    session = std::move(*key);
    auto sig = sign_tpmt(tpm_, *binding,
                         protocol::session_key_signed_bytes(nonce, session->raw_thumbprint()));
    if (!sig) return fail(std::move(sig).error().context("attest: session key certification"));
    req.session_key = protocol::SessionKey{
        json::serialize(session->public_jwk().required_members()), std::move(*sig)};
  }

  auto res = options_.issuer->attest(req);
  if (!res) return fail(std::move(res).error().context("attest"));
  if (res->verdict != protocol::Verdict::kPass || !res->device_token) {
    // The next attempt sends the whole IMA list, which the issuer accepts whatever it stored
    // (its incremental state may be what it refused: another offset, a bank now quoted).
    ima_offset_ = 0;
    std::string why;
    for (const auto& r : res->reasons) {
      why += (why.empty() ? "" : "; ") + r.code + " " + r.subject;
      if (r.expected || r.found)
        why += " (expected " + r.expected.value_or("-") + ", found " + r.found.value_or("-") + ")";
    }
    return fail(ErrorCode::kPolicyViolation,
                "attest: issuer refused (policy " + res->policy_version + "): " + why);
  }
  // Accepted: the new binding key replaces the old one (the issuer now knows only this one).
  announce_write(store_.binding_key_path());
  if (auto saved = store_.save_binding_key(*binding); !saved) {
    spdlog::warn(
        "agent: binding key not saved ({}); a restart will need a new attestation "
        "before it can report revocations",
        saved.error().message);
  }
  binding_key_ = std::move(*binding);
  device_token_ = std::move(*res->device_token);
  device_token_iat_ = now();
  device_token_exp_ = static_cast<std::int64_t>(res->expires_at.value_or(0));
  ima_offset_ = res->ima_next_offset;
  ++attestations_;

  // Tokens bound to the previous key would fail their proofs: drop them.
  cache_.clear();
  if (session_key_) session_key_->wipe();
  tpm_signer_.reset();
  proof_signer_ = nullptr;
  if (session) {
    session_key_ = std::move(session);
    proof_signer_ = session_key_.get();
  } else {
    auto signer = TpmBindingSigner::create(tpm_, *binding_key_);
    if (!signer) return fail(std::move(signer).error());
    tpm_signer_ = std::move(*signer);
    proof_signer_ = tpm_signer_.get();
  }
  spdlog::info("agent: attestation accepted (policy {}), device token valid for {} s",
               res->policy_version, device_token_exp_ - device_token_iat_);
  return ok();
}

Status Agent::reattest_locked(const std::string& why) {
  const AgentState from = lifecycle_.state();
  if (!enrollment_) {
    transition(AgentState::kEnrolling, "enrolling (" + why + ")");
    if (auto e = enroll_locked(); !e) {
      transition(AgentState::kDegraded, e.error().message);
      next_retry_ = now() + backoff_.next().count() / 1000 + 1;
      return e;
    }
    transition(AgentState::kAttesting, "attesting after enrollment");
  } else if (from == AgentState::kStarting) {
    transition(AgentState::kAttesting, "attesting (" + why + ")");
  } else {
    transition(AgentState::kReattesting, "re-attesting (" + why + ")");
  }

  auto attested = attest_locked();
  if (!attested) {
    const Error& e = attested.error();
    if (e.code == ErrorCode::kUnknownKey || e.code == ErrorCode::kNotFound) {
      // The issuer forgot this device (or the TPM was cleared): enroll again from scratch.
      spdlog::warn("agent: {}; enrolling again", e.message);
      announce_write(store_.enrollment_path());
      announce_write(store_.binding_key_path());
      (void)store_.remove_enrollment();
      enrollment_.reset();
      binding_key_.reset();
    }
    if (issuer_unreachable(e) || e.code == ErrorCode::kTpm || !enrollment_) {
      transition(AgentState::kDegraded, e.message);
    } else {
      revoke_all_locked(e.message, false);
      // A refusal is not final: the policy or the device may change. Ask again with backoff
      // (an admin revocation, which turns this off, is).
      auto_reattest_ = true;
    }
    next_retry_ = now() + backoff_.next().count() / 1000 + 1;
    return attested;
  }
  backoff_.reset();
  next_retry_ = 0;
  auto_reattest_ = false;
  if (lifecycle_.state() == AgentState::kDegraded) transition(AgentState::kReattesting, why);
  transition(AgentState::kServing, "attested (" + why + ")");
  return ok();
}

std::chrono::milliseconds Agent::tick() {
  std::lock_guard lock(mu_);
  const std::int64_t t = now();
  cache_.expire(t);
  const AgentState s = lifecycle_.state();
  const bool retry_due = next_retry_ != 0 && t >= next_retry_;
  if (s == AgentState::kDegraded || (s == AgentState::kRevoked && auto_reattest_)) {
    if (retry_due) (void)reattest_locked("retry");
  } else if (s == AgentState::kServing && device_token_exp_ != 0) {
    // Renew at two thirds of the device token's life so that workloads never see a gap.
    const std::int64_t life = std::max<std::int64_t>(device_token_exp_ - device_token_iat_, 3);
    if (t >= device_token_iat_ + life * 2 / 3) (void)reattest_locked("device token renewal");
  }
  return std::chrono::milliseconds(1000);
}

// ---- revocation and posture ---------------------------------------------------------------------

void Agent::report_revocation_locked(const std::string& reason, std::vector<std::string> jtis) {
  if (!enrollment_ || !binding_key_) return;
  protocol::RevokeRequest req;
  req.device_id = enrollment_->device_id;
  req.reason = reason.substr(0, 1024);
  req.timestamp = static_cast<std::uint64_t>(now());
  req.jtis = std::move(jtis);
  auto sig = sign_tpmt(tpm_, *binding_key_, protocol::revoke_signed_bytes(req));
  if (!sig) {
    spdlog::warn("agent: revocation not reported: {}", sig.error().message);
    return;
  }
  req.signature = std::move(*sig);
  auto r = options_.issuer->revoke(req);
  if (!r) {
    spdlog::warn("agent: revocation not reported to the issuer: {}", r.error().message);
  } else {
    spdlog::info("agent: issuer revoked {} token(s)", r->revoked);
  }
}

void Agent::revoke_all_locked(const std::string& reason, bool report) {
  cache_.clear();
  if (session_key_) session_key_->wipe();
  session_key_.reset();
  tpm_signer_.reset();
  proof_signer_ = nullptr;
  device_token_.clear();
  device_token_exp_ = 0;
  transition(AgentState::kRevoked, reason);
  publish("revoked", reason);
  if (report) report_revocation_locked(reason, {});
}

void Agent::apply(const posture::Change& change) {
  std::lock_guard lock(mu_);
  // Subjects such as "pcr sha256:7" or "tpm" already name their source; container ids and file
  // paths do not.
  const std::string source(source_name(change.source));
  const bool named = change.subject == source || change.subject.rfind(source + " ", 0) == 0;
  const std::string what = (named ? "" : source + " ") + change.subject + ": " + change.old_value +
                           " -> " + change.new_value;
  switch (change.action) {
    case posture::Action::kNone:
      spdlog::debug("posture: {}", what);
      return;
    case posture::Action::kRevokeWorkload: {
      const std::string id = change.workload.value_or(change.subject);
      auto jtis = cache_.remove_container(id);
      spdlog::info("posture: {}; revoked {} token(s) of workload {}", what, jtis.size(), id);
      api::Event owners;
      owners.container_id = id;
      publish("workload_revoked", id, std::move(owners));
      if (!jtis.empty()) report_revocation_locked("workload gone: " + id, std::move(jtis));
      return;
    }
    case posture::Action::kReattest:
      spdlog::info("posture: {}; re-attesting", what);
      if (enrollment_) (void)reattest_locked("posture: " + what);
      return;
    case posture::Action::kRevokeAll:
      spdlog::warn("posture: {}; revoking everything", what);
      revoke_all_locked("posture: " + what, true);
      auto_reattest_ = true;
      next_retry_ = now() + backoff_.next().count() / 1000;
      return;
  }
}

Status Agent::poll_status_list() {
  std::lock_guard lock(mu_);
  std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> by_list;
  for (const auto& jti : cache_.jtis()) {
    const CachedToken* t = cache_.by_jti(jti, now());
    if (t != nullptr && !t->status_list.empty())
      by_list[t->status_list].emplace_back(t->jti, t->status_index);
  }
  if (by_list.empty()) return ok();
  auto jwks_text = options_.issuer->jwks();
  if (!jwks_text) return fail(std::move(jwks_text).error().context("status list"));
  auto keys = token::KeySet::from_json(*jwks_text);
  if (!keys) return fail(std::move(keys).error().context("status list: JWKS"));
  for (auto& [list_id, entries] : by_list) {
    auto jwt = options_.issuer->status_list(list_id);
    if (!jwt) return fail(std::move(jwt).error());
    auto list = token::verify_status_list_jwt(*jwt, *keys, now());
    if (!list) return fail(std::move(list).error().context("status list " + list_id));
    for (const auto& [jti, index] : entries) {
      auto v = list->get(index);
      if (v && *v != 0) {
        api::Event owners;
        if (const CachedToken* gone = cache_.by_jti(jti, now()); gone != nullptr)
          owners.workload = gone->owner;
        cache_.remove_jti(jti);
        spdlog::info("status list: token at index {} revoked by the issuer; dropped", index);
        publish("token_revoked", jti, std::move(owners));
      }
    }
  }
  return ok();
}

Status Agent::poll_device_status() {
  protocol::ChallengeRequest req;
  {
    std::lock_guard lock(mu_);
    if (!enrollment_ || lifecycle_.state() != AgentState::kServing) return ok();
    req.device_id = enrollment_->device_id;
  }
  // Unlocked: cached answers to workloads must not wait on the issuer (IssuerClient serialises
  // its own connection). The nonce is thrown away; it expires on its own.
  auto r = options_.issuer->challenge(req);
  if (r) return ok();
  if (r.error().code != ErrorCode::kRevoked) return fail(std::move(r).error());
  std::lock_guard lock(mu_);
  if (lifecycle_.state() != AgentState::kServing) return ok();
  spdlog::warn("agent: the issuer revoked this device ({}); revoking everything",
               r.error().message);
  revoke_all_locked("issuer: " + r.error().message, false);
  // Like a refused attestation: an admin may enable the device again.
  auto_reattest_ = true;
  next_retry_ = now() + backoff_.next().count() / 1000 + 1;
  return ok();
}

void Agent::shutdown() {
  std::lock_guard lock(mu_);
  cache_.clear();
  if (session_key_) session_key_->wipe();
  session_key_.reset();
  tpm_signer_.reset();
  proof_signer_ = nullptr;
  device_token_.clear();
}

void Agent::reload(const AgentConfig& config) {
  std::lock_guard lock(mu_);
  const bool proof_mode_changed = config.proof_mode != options_.config.proof_mode;
  const std::string tcti = options_.config.tcti;
  const auto state_dir = options_.config.state_dir;
  options_.config = config;
  options_.config.tcti = tcti;
  options_.config.state_dir = state_dir;
  spdlog::info("agent: configuration reloaded");
  if (proof_mode_changed && enrollment_) (void)reattest_locked("proof mode changed");
}

// ---- workload API -------------------------------------------------------------------------------

Result<protocol::TokenResponse> Agent::fetch_token_locked(const os::Selectors& caller,
                                                          const TokenRequest& request,
                                                          TokenFormat format, std::uint32_t ttl) {
  if (proof_signer_ == nullptr || device_token_.empty())
    return fail(ErrorCode::kUnavailable, "token: no device token (not attested)");
  const std::string htu = options_.issuer->token_url();
  auto proof = token::create_proof(*proof_signer_, {"POST", htu, std::nullopt, std::nullopt}, now(),
                                   *options_.random);
  if (!proof) return fail(std::move(proof).error().context("token: device proof"));
  protocol::TokenRequest req;
  req.device_token = device_token_;
  req.proof = std::move(*proof);
  req.selectors = to_protocol(caller);
  req.audience = request.audience;
  req.scopes = request.scopes;
  req.ttl = ttl;
  req.format =
      format == TokenFormat::kCwt ? protocol::TokenFormat::kCwt : protocol::TokenFormat::kJwt;
  return options_.issuer->token(req);
}

Result<TokenResponse> Agent::token(const os::Selectors& caller, const TokenRequest& request) {
  std::lock_guard lock(mu_);
  if (!may_serve_cached()) {
    return fail(
        lifecycle_.state() == AgentState::kRevoked ? ErrorCode::kRevoked : ErrorCode::kUnavailable,
        "token: agent is " + std::string(to_string(lifecycle_.state())) + ", not serving (" +
            reason_ + ")");
  }
  const TokenFormat format = request.format.value_or(options_.config.token_format);
  const auto ttl =
      std::min(request.ttl.value_or(options_.config.token_ttl), options_.config.token_max_ttl);
  if (ttl.count() <= 0) return fail(ErrorCode::kInvalidArgument, "token: ttl must be positive");
  const std::string owner = workload_identity(caller);
  const std::string key =
      TokenCache::key(owner, request.audience, request.scopes, format, ttl.count());
  const std::int64_t t = now();
  const CachedToken* cached = cache_.find(key, t);
  auto respond = [](const CachedToken& c) {
    return TokenResponse{c.token, "DPoP", c.jti, c.expires_at};
  };
  if (cached != nullptr) {
    const std::int64_t life = std::max<std::int64_t>(cached->expires_at - cached->issued_at, 1);
    if (t < cached->expires_at - life / 5 || lifecycle_.state() != AgentState::kServing)
      return respond(*cached);
  }
  if (lifecycle_.state() != AgentState::kServing) {
    return fail(ErrorCode::kUnavailable, "token: issuer unreachable (" + reason_ +
                                             ") and no unexpired token for this request");
  }
  auto fetched =
      fetch_token_locked(caller, request, format, static_cast<std::uint32_t>(ttl.count()));
  if (!fetched && fetched.error().code == ErrorCode::kRevoked) {
    // The issuer no longer takes this device token: the device was revoked (and perhaps enabled
    // again between two status polls). Attest once now; a device still revoked is refused there
    // and this agent revokes, one that was enabled again gets a fresh device token.
    spdlog::info("agent: the issuer refused the device token ({}); attesting again",
                 fetched.error().message);
    if (reattest_locked("issuer refused the device token")) {
      fetched =
          fetch_token_locked(caller, request, format, static_cast<std::uint32_t>(ttl.count()));
    }
  }
  if (!fetched) {
    if (cached != nullptr && issuer_unreachable(fetched.error())) return respond(*cached);
    return fail(std::move(fetched).error());
  }
  CachedToken entry;
  entry.token = token_text(*fetched);
  entry.jti = fetched->jti;
  entry.issued_at = t;
  entry.expires_at = static_cast<std::int64_t>(fetched->expires_at);
  entry.owner = owner;
  entry.container_id = caller.container_id;
  entry.status_index = fetched->status_index;
  status_ref(entry.token, format, entry);
  TokenResponse out = respond(entry);
  cache_.put(key, std::move(entry));
  return out;
}

Result<ProofResponse> Agent::proof(const os::Selectors& caller, const ProofRequest& request) {
  std::lock_guard lock(mu_);
  if (!may_serve_cached() || proof_signer_ == nullptr) {
    return fail(ErrorCode::kRevoked, "proof: agent is " +
                                         std::string(to_string(lifecycle_.state())) +
                                         ", not proving (" + reason_ + ")");
  }
  const CachedToken* t = cache_.by_jti(request.jti, now());
  // Same answer for "unknown" and "someone else's": a caller learns nothing about other jtis.
  if (t == nullptr || t->owner != workload_identity(caller)) {
    return fail(ErrorCode::kPermissionDenied,
                "proof: no unexpired token with this jti was issued to the calling workload");
  }
  std::string htu = request.htu;
  if (auto q = htu.find_first_of("?#"); q != std::string::npos) htu.resize(q);
  auto p = token::create_proof(*proof_signer_, {request.htm, htu, t->token, std::nullopt}, now(),
                               *options_.random);
  if (!p) return fail(std::move(p).error().context("proof"));
  return ProofResponse{std::move(*p)};
}

Result<SecretBytes> Agent::secret(const os::Selectors& caller, const std::string& name) {
  std::lock_guard lock(mu_);
  if (lifecycle_.state() != AgentState::kServing) {
    return fail(ErrorCode::kUnavailable, "secret: agent is " +
                                             std::string(to_string(lifecycle_.state())) +
                                             "; secrets are released only while serving");
  }
  auto sealed = store_.load_secret(name);
  if (!sealed) return fail(std::move(sealed).error().context("secret"));
  if (!*sealed) return fail(ErrorCode::kNotFound, "secret: no secret named \"" + name + "\"");
  const bool allowed = std::any_of((*sealed)->allow.begin(), (*sealed)->allow.end(),
                                   [&](const SelectorMatch& m) { return m.matches(caller); });
  if (!allowed) {
    return fail(ErrorCode::kPermissionDenied,
                "secret: the caller matches none of the selectors allowed for \"" + name + "\"");
  }
  auto value = tpm_.unseal((*sealed)->blob);
  if (!value) return fail(std::move(value).error().context("secret " + name));
  return std::move(*value);
}

Status Agent::seal_secret(const os::Selectors& caller, const SealRequest& request) {
  std::lock_guard lock(mu_);
  WARDEN_TRY_STATUS(StateStore::check_secret_name(request.name));
  if (lifecycle_.state() != AgentState::kServing) {
    return fail(ErrorCode::kUnavailable,
                "seal: agent is " + std::string(to_string(lifecycle_.state())) +
                    "; secrets are sealed only to a state the issuer accepted");
  }
  if (request.allow.empty())
    return fail(ErrorCode::kInvalidArgument, "seal: at least one allow rule is required");
  const PcrSelection selection = seal_selection(options_.config);
  if (selection.empty())
    return fail(ErrorCode::kInvalidArgument, "seal: tpm.pcrs has no sha256 boot PCR to seal to");
  auto blob = tpm_.seal(selection, request.value.view());
  if (!blob) return fail(std::move(blob).error().context("seal " + request.name));
  announce_write(store_.secret_path(request.name));
  WARDEN_TRY_STATUS(store_.save_secret(request.name, {request.allow, std::move(*blob)}));
  spdlog::info("agent: sealed secret \"{}\" for uid {} (pid {})", request.name, caller.uid,
               caller.pid);
  return ok();
}

AgentStatus Agent::status_locked() const {
  return AgentStatus{std::string(to_string(lifecycle_.state())), reason_, since_,
                     enrollment_.has_value()};
}

Result<AgentStatus> Agent::status() {
  std::lock_guard lock(mu_);
  return status_locked();
}

Status Agent::revoke(const os::Selectors& caller, const std::string& reason) {
  std::lock_guard lock(mu_);
  spdlog::warn("agent: revocation requested by uid {} (pid {})", caller.uid, caller.pid);
  auto_reattest_ = false;
  revoke_all_locked("revoked by admin: " + reason, true);
  return ok();
}

Result<AgentStatus> Agent::reattest(const os::Selectors& caller) {
  std::lock_guard lock(mu_);
  spdlog::info("agent: re-attestation requested by uid {} (pid {})", caller.uid, caller.pid);
  auto r = reattest_locked("requested by admin");
  if (!r) return fail(std::move(r).error());
  return status_locked();
}

}  // namespace warden::agent
