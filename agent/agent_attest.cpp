// Enrollment and attestation rounds. A round holds mu_ only to read and commit state: the TPM
// commands run under the TPM's lock and the issuer's round trips under no lock of the agent's.
#include <sys/utsname.h>

#include <fstream>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "agent/agent.h"
#include "agent/agent_detail.h"
#include "agent/sealing.h"
#include "attest/ima/ima_walk.h"
#include "attest/token/json.h"
#include "platform/base/file.h"
#include "platform/base/version.h"

namespace warden::agent {
namespace {

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

std::string refusal_reasons(const protocol::AttestResponse& res) {
  std::string why;
  for (const auto& r : res.reasons) {
    why += (why.empty() ? "" : "; ") + r.code + " " + r.subject;
    if (r.expected || r.found)
      why += " (expected " + r.expected.value_or("-") + ", found " + r.found.value_or("-") + ")";
  }
  return why;
}

Result<protocol::ImaLog> read_ima(const std::filesystem::path& path, std::uint64_t offset) {
  auto list = read_if_present(path, 256u << 20);
  if (!list) return fail(std::move(list).error());
  protocol::ImaLog out;
  if (!*list) return out;
  auto at = attest::ima::entry_offset(**list, offset);
  if (!at) {
    // The kernel list restarted (reboot): send it whole; the issuer replays from zero.
    offset = 0;
    at = 0;
  }
  out.offset = offset;
  out.entries.assign((*list)->begin() + static_cast<std::ptrdiff_t>(*at), (*list)->end());
  return out;
}

}  // namespace

struct Agent::Attested {
  tpm::BindingKey binding;
  std::unique_ptr<SessionKey> session;
  protocol::AttestResponse response;
};

Status Agent::enroll(std::unique_lock<std::mutex>& lock) {
  lock.unlock();
  std::optional<Bytes> seal_authority;
  auto enrolled = [&]() -> Result<EnrollmentRecord> {
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
    auto answer = options_.issuer->enroll(req);
    if (!answer) return fail(std::move(answer).error().context("enroll"));

    auto secret = tpm_.activate_credential(*ak, answer->credential_blob, answer->encrypted_secret);
    if (!secret) return fail(std::move(secret).error().context("enroll: ActivateCredential"));
    auto proof = protocol::activation_proof(secret->view(), answer->enrollment_id, ak->name());
    if (!proof) return fail(std::move(proof).error());
    auto activated = options_.issuer->activate({answer->enrollment_id, std::move(*proof)});
    if (!activated) return fail(std::move(activated).error().context("enroll: activate"));
    seal_authority = std::move(answer->seal_authority);
    return EnrollmentRecord{activated->device_id, std::move(*ak)};
  }();
  lock.lock();
  if (!enrolled) return fail(std::move(enrolled).error());
  announce_write(store_.enrollment_path());
  WARDEN_TRY_STATUS(store_.save_enrollment(*enrolled));
  if (seal_authority) {
    if (auto name = attest::tpm_policy::authority_name(*seal_authority); !name) {
      spdlog::warn(
          "agent: the issuer's sealing authority is unusable ({}); secrets are sealed "
          "to the current PCR values only",
          name.error().message);
    } else {
      announce_write(store_.seal_authority_path());
      WARDEN_TRY_STATUS(store_.save_seal_authority(*seal_authority));
    }
  }
  spdlog::info("agent: enrolled as device {}", enrolled->device_id);
  enrollment_ = std::move(*enrolled);
  binding_key_.reset();
  ima_offset_ = 0;
  return ok();
}

Result<Agent::Attested> Agent::attest(std::unique_lock<std::mutex>& lock) {
  if (!enrollment_) return fail(ErrorCode::kNotFound, "attest: not enrolled");
  const std::string device = enrollment_->device_id;
  const tpm::AkBlob ak = enrollment_->ak;
  const std::uint64_t ima_offset = ima_offset_;
  const AgentConfig config = options_.config;
  auto authority = store_.load_seal_authority();
  const bool sealing = authority && *authority && !seal_selection(config).empty();
  lock.unlock();
  auto attested = [&]() -> Result<Attested> {
    auto challenge = options_.issuer->challenge({device});
    if (!challenge) return fail(std::move(challenge).error().context("attest: challenge"));
    const Bytes& nonce = challenge->nonce;

    const PcrSelection selection = config.quoted_pcrs();
    protocol::AttestRequest req;
    req.device_id = device;
    req.nonce = nonce;
    req.pcr_selection = selection.to_string();
    // Logs first, quote last: a measurement between the two shows as a replay mismatch and is
    // retried, never as a quote older than its logs.
    auto boot = read_if_present(config.event_log_path(), 1u << 20);
    if (!boot) return fail(std::move(boot).error().context("attest: boot event log"));
    if (*boot) req.boot_log = std::move(**boot);
    if (std::filesystem::exists(config.ima_log_path())) {
      auto ima = read_ima(config.ima_log_path(), ima_offset);
      if (!ima) return fail(std::move(ima).error().context("attest: IMA list"));
      req.ima = std::move(*ima);
    }
    auto cel = read_if_present(config.cel_log_path(), 4u << 20);
    if (!cel) return fail(std::move(cel).error().context("attest: container event log"));
    if (*cel) req.cel = std::move(**cel);
    req.kernel_version = kernel_release();
    if (sealing) req.seal_pcrs = seal_selection(config).to_string();

    auto quote = tpm_.quote(ak, selection, nonce);
    if (!quote) return fail(std::move(quote).error().context("attest: quote"));
    req.quote = {std::move(quote->attest), std::move(quote->signature)};

    auto binding = tpm_.create_binding_key(ak, nonce);
    if (!binding) return fail(std::move(binding).error().context("attest: binding key"));
    req.binding_key.public_area = binding->public_area;
    req.binding_key.certify = {binding->certify_attest, binding->certify_signature};

    std::unique_ptr<SessionKey> session;
    if (config.proof_mode == ProofMode::kSession) {
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
    return Attested{std::move(*binding), std::move(session), std::move(*res)};
  }();
  lock.lock();
  if (!attested) return attested;
  const auto& res = attested->response;
  if (res.verdict != protocol::Verdict::kPass || !res.device_token) {
    // The next attempt sends the whole IMA list, which the issuer accepts whatever it stored
    // (its incremental state may be what it refused: another offset, a bank now quoted).
    ima_offset_ = 0;
    return fail(ErrorCode::kPolicyViolation, "attest: issuer refused (policy " +
                                                 res.policy_version + "): " + refusal_reasons(res));
  }
  return attested;
}

Status Agent::commit(Attested attested) {
  auto& res = attested.response;
  // Accepted: the new binding key replaces the old one (the issuer now knows only this one).
  announce_write(store_.binding_key_path());
  if (auto saved = store_.save_binding_key(attested.binding); !saved) {
    spdlog::warn(
        "agent: binding key not saved ({}); a restart will need a new attestation "
        "before it can report revocations",
        saved.error().message);
  }
  // Tokens bound to the previous key would fail their proofs: drop them.
  drop_credentials_locked();
  binding_key_ = std::move(attested.binding);
  device_token_ = std::move(*res.device_token);
  device_token_iat_ = now();
  device_token_exp_ = static_cast<std::int64_t>(res.expires_at.value_or(0));
  ima_offset_ = res.ima_next_offset;
  ++attestations_;
  if (res.approved_policy) keep_approval(*res.approved_policy);
  if (attested.session) {
    session_key_ = std::move(attested.session);
    proof_signer_ = session_key_;
  } else {
    auto signer = TpmBindingSigner::create(tpm_, *binding_key_);
    if (!signer) return fail(std::move(signer).error());
    tpm_signer_ = std::move(*signer);
    proof_signer_ = tpm_signer_;
  }
  spdlog::info("agent: attestation accepted (policy {}), device token valid for {} s",
               res.policy_version, device_token_exp_ - device_token_iat_);
  return ok();
}

// The issuer's approval of the PCR values it just appraised: what sealed secrets are unsealed
// with until the next one. Kept only when it is the authority's and for the PCRs sealed to.
void Agent::keep_approval(ByteSpan approval) {
  auto authority = store_.load_seal_authority();
  if (!authority || !*authority) return;
  auto checked = check_approval(approval, **authority, seal_selection(options_.config));
  if (!checked) {
    spdlog::warn("agent: approved policy ignored: {}", checked.error().message);
    return;
  }
  announce_write(store_.approval_path());
  if (auto saved = store_.save_approval(approval); !saved)
    spdlog::warn("agent: approved policy not saved: {}", saved.error().message);
}

Status Agent::round(std::unique_lock<std::mutex>& lock, const std::string& why) {
  const AgentState from = lifecycle_.state();
  const std::uint64_t epoch = epoch_;
  auto superseded = [&] {
    // Revoked, shut down or a posture change while the round ran: what it proved is stale, and
    // whoever moved the epoch has set the state.
    return fail(ErrorCode::kUnavailable, "attest: superseded (" + reason_ + ")");
  };
  if (!enrollment_) {
    transition(AgentState::kEnrolling, "enrolling (" + why + ")");
    if (auto e = enroll(lock); !e) {
      if (epoch != epoch_) return superseded();
      transition(AgentState::kDegraded, e.error().message);
      next_retry_ = now() + backoff_.next().count() / 1000 + 1;
      return e;
    }
    if (epoch != epoch_) return superseded();
    transition(AgentState::kAttesting, "attesting after enrollment");
  } else if (from == AgentState::kRevoked) {
    // Revoked until a round passes: a workload asking meanwhile is told so, not "unavailable".
  } else if (from == AgentState::kStarting || from == AgentState::kAttesting) {
    transition(AgentState::kAttesting, "attesting (" + why + ")");
  } else {
    transition(AgentState::kReattesting, "re-attesting (" + why + ")");
  }

  auto attested = attest(lock);
  if (epoch != epoch_) return superseded();
  Status committed = attested ? commit(std::move(*attested)) : fail(attested.error());
  if (!committed) {
    const Error& e = committed.error();
    if (e.code == ErrorCode::kUnknownKey || e.code == ErrorCode::kNotFound) {
      // The issuer forgot this device (or the TPM was cleared): enroll again from scratch.
      spdlog::warn("agent: {}; enrolling again", e.message);
      announce_write(store_.enrollment_path());
      announce_write(store_.binding_key_path());
      (void)store_.remove_enrollment();
      enrollment_.reset();
      binding_key_.reset();
    }
    if (lifecycle_.state() == AgentState::kRevoked &&
        (detail::issuer_unreachable(e) || e.code == ErrorCode::kTpm)) {
      // Still revoked, retrying with backoff as degraded would (an admin's re-attestation too).
      transition(AgentState::kRevoked, e.message);
      auto_reattest_ = true;
    } else if (detail::issuer_unreachable(e) || e.code == ErrorCode::kTpm || !enrollment_) {
      transition(AgentState::kDegraded, e.message);
    } else {
      revoke_all_locked(e.message, false);
      // A refusal is not final: the policy or the device may change. Ask again with backoff
      // (an admin revocation, which turns this off, is).
      auto_reattest_ = true;
    }
    next_retry_ = now() + backoff_.next().count() / 1000 + 1;
    return committed;
  }
  backoff_.reset();
  next_retry_ = 0;
  auto_reattest_ = false;
  const AgentState now_in = lifecycle_.state();
  if (now_in == AgentState::kDegraded || now_in == AgentState::kRevoked)
    transition(AgentState::kReattesting, why);
  transition(AgentState::kServing, "attested (" + why + ")");
  return ok();
}

Status Agent::reattest(std::unique_lock<std::mutex>& lock, const std::string& why) {
  return rounds_.join(lock, [&] { return round(lock, why); });
}

}  // namespace warden::agent
