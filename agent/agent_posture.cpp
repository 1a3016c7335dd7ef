// Revocation and posture: what a change withdraws at once (react, under mu_ only) and what it
// then asks of the issuer (follow_up, with no lock of the agent's held), status list and device
// status polls, the admin's revoke and re-attest.
#include <map>

#include <spdlog/spdlog.h>

#include "agent/agent.h"
#include "attest/token/status_list.h"

namespace warden::agent {
namespace {

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

std::string report_scope(const protocol::RevokeRequest& req) {
  return req.jtis.empty() ? std::string("all tokens")
                          : std::to_string(req.jtis.size()) + " token(s)";
}

}  // namespace

void Agent::queue_report_locked(const std::string& reason, std::vector<std::string> jtis) {
  if (!enrollment_ || !binding_key_) return;
  protocol::RevokeRequest req;
  req.device_id = enrollment_->device_id;
  req.reason = reason.substr(0, 1024);
  req.jtis = std::move(jtis);
  reports_.push(RevocationReport{std::move(req), *binding_key_});
}

void Agent::send_reports(std::unique_lock<std::mutex>& lock, bool all) {
  for (bool first = true, again = true; again; first = false) {
    again = false;
    // A second pass only for the reports signed again: the others have had their attempt.
    std::vector<ReportQueue::Attempt> attempts = reports_.take(all && first);
    if (attempts.empty()) return;
    lock.unlock();
    std::vector<std::optional<Error>> failed;
    failed.reserve(attempts.size());
    for (auto& a : attempts) failed.push_back(send_report(a));
    lock.lock();
    for (std::size_t i = 0; i < attempts.size(); ++i) {
      if (!failed[i]) {
        reports_.finish();
      } else if (failed[i]->code == ErrorCode::kBadSignature) {
        again |= resign_or_drop_locked(std::move(attempts[i]), *failed[i]);
      } else {
        const unsigned attempt = attempts[i].failures + 1;
        const std::string what = report_scope(attempts[i].report.request);
        const auto delay = reports_.retry(std::move(attempts[i]));
        spdlog::info(
            "agent: revocation report ({}) not delivered (attempt {}): {}; next attempt in {} ms",
            what, attempt, failed[i]->message, delay.count());
      }
    }
  }
}

bool Agent::resign_or_drop_locked(ReportQueue::Attempt attempt, const Error& refusal) {
  const auto& req = attempt.report.request;
  const std::string what = report_scope(req);
  // The issuer holds only the newest binding key: a report queued while a round that replaced
  // it was running would be refused for good. Its tokens are named, and the device's current key
  // speaks for the same device; a revoke-all is not re-signed, since the attestation of the new
  // key has since told the issuer the posture, and revoking all now would revoke what that
  // attestation earned.
  const bool resign = !req.jtis.empty() && enrollment_ && binding_key_ &&
                      enrollment_->device_id == req.device_id &&
                      binding_key_->public_area != attempt.report.key.public_area;
  if (!resign) {
    reports_.finish();
    spdlog::warn(
        "agent: revocation report ({}) dropped: its binding key is no longer the device's at the "
        "issuer (attested or enrolled again since): {}",
        what, refusal.message);
    return false;
  }
  spdlog::info(
      "agent: revocation report ({}) refused for the binding key it was queued with, which an "
      "attestation has replaced since; signing it with the current key",
      what);
  attempt.report.key = *binding_key_;
  reports_.resubmit(std::move(attempt));
  return true;
}

std::optional<Error> Agent::send_report(ReportQueue::Attempt& attempt) {
  auto& [req, key] = attempt.report;
  const std::string what = report_scope(req);
  // The issuer's replay check keys on the signed bytes, which hold only a timestamp in seconds:
  // two revoke-alls within one second (an admin revoke after a re-attestation, or the first report
  // of an agent restarted within the second) would be one request to it, and the second revocation
  // lost (tests/fault: RevocationAcknowledgedBeforeSigkillHoldsAfterRestart). So every attempt
  // gets a timestamp later than any this process sent before.
  Result<protocol::RevokeResponse> r = fail(ErrorCode::kReplay, "revoke: not sent");
  for (int stamp = 0; stamp < 1; ++stamp) {  // re-stamping on replay: see docs/RELIABILITY.md
    const auto clock_now = static_cast<std::uint64_t>(now());
    std::uint64_t last = last_report_ts_.load();
    std::uint64_t ts = 0;
    do {
      ts = std::max(clock_now, last + 1);
    } while (!last_report_ts_.compare_exchange_weak(last, ts));
    req.timestamp = ts;
    req.signature.clear();
    auto sig = sign_tpmt(tpm_, key, protocol::revoke_signed_bytes(req));
    if (!sig) {
      // A key the TPM no longer loads (cleared, another SRK) is gone, and so is the report.
      if (classify_signing_error(sig.error()) == ReportOutcome::kRetry)
        return sig.error().context("TPM");
      spdlog::warn(
          "agent: revocation report ({}) dropped: the binding key it was made with no "
          "longer signs: {}",
          what, sig.error().message);
      return std::nullopt;
    }
    req.signature = std::move(*sig);
    r = options_.issuer->revoke(req);
    if (r || r.error().code != ErrorCode::kReplay) break;
  }
  if (r) {
    spdlog::info(
        "agent: revocation report ({}) delivered at attempt {}; the issuer revoked {} token(s)",
        what, attempt.failures + 1, r->revoked);
    return std::nullopt;
  }
  const ErrorCode code = r.error().code;
  if (code == ErrorCode::kBadSignature) return std::move(r).error();  // the caller's call
  switch (classify_report_error(r.error())) {
    case ReportOutcome::kDelivered:
      spdlog::info("agent: revocation report ({}) was applied by an earlier attempt: {}", what,
                   r.error().message);
      return std::nullopt;
    case ReportOutcome::kRetry:
      return std::move(r).error();
    case ReportOutcome::kDrop:
      break;
  }
  const char* why = code == ErrorCode::kUnknownKey || code == ErrorCode::kNotFound
                        ? "the issuer no longer knows the device or its key (deleted or enrolled "
                          "again)"
                        : "the issuer refused it";
  spdlog::warn("agent: revocation report ({}) dropped: {}: {} ({})", what, why, r.error().message,
               to_string(code));
  return std::nullopt;
}

void Agent::revoke_all_locked(const std::string& reason, bool report) {
  drop_credentials_locked();
  pending_reattest_.reset();
  transition(AgentState::kRevoked, reason);
  publish("revoked", reason);
  if (report) queue_report_locked(reason, {});
}

void Agent::react(const posture::Change& change) {
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
      if (!jtis.empty()) queue_report_locked("workload gone: " + id, std::move(jtis));
      return;
    }
    case posture::Action::kReattest:
      spdlog::info("posture: {}; re-attesting", what);
      if (!enrollment_) return;
      // What the last quote proved no longer holds: stop serving until a new one passes, and
      // make a round that read the TPM before this change count for nothing.
      ++epoch_;
      if (lifecycle_.state() == AgentState::kServing)
        transition(AgentState::kReattesting, "re-attesting (posture: " + what + ")");
      pending_reattest_ = "posture: " + what;
      return;
    case posture::Action::kRevokeAll:
      spdlog::warn("posture: {}; revoking everything", what);
      revoke_all_locked("posture: " + what, true);
      auto_reattest_ = true;
      next_retry_ = now() + backoff_.next().count() / 1000;
      return;
  }
}

void Agent::follow_up() {
  std::unique_lock lock(mu_);
  // Before a round that may replace the binding key: every queued report, not only those due.
  send_reports(lock, pending_reattest_.has_value());
  if (auto why = std::move(pending_reattest_)) {
    pending_reattest_.reset();
    (void)reattest(lock, *why);
  }
}

void Agent::deliver_reports() {
  std::unique_lock lock(mu_);
  send_reports(lock, false);
}

void Agent::apply(const posture::Change& change) {
  react(change);
  follow_up();
}

Status Agent::poll_status_list() {
  std::unique_lock lock(mu_);
  std::map<std::string, std::vector<std::pair<std::string, std::uint64_t>>> by_list;
  for (const auto& jti : cache_.jtis()) {
    const CachedToken* t = cache_.by_jti(jti, now());
    if (t != nullptr && !t->status_list.empty())
      by_list[t->status_list].emplace_back(t->jti, t->status_index);
  }
  if (by_list.empty()) return ok();
  lock.unlock();
  std::vector<std::pair<std::string, std::uint64_t>> revoked;  // jti, index
  auto fetched = [&]() -> Status {
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
        if (auto v = list->get(index); v && *v != 0) revoked.emplace_back(jti, index);
      }
    }
    return ok();
  }();
  lock.lock();
  // What the lists revoked is dropped even when a later list failed to load.
  for (const auto& [jti, index] : revoked) {
    api::Event owners;
    if (const CachedToken* gone = cache_.by_jti(jti, now()); gone != nullptr)
      owners.workload = gone->owner;
    cache_.remove_jti(jti);
    spdlog::info("status list: token at index {} revoked by the issuer; dropped", index);
    publish("token_revoked", jti, std::move(owners));
  }
  return fetched;
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

Status Agent::revoke(const os::Selectors& caller, const std::string& reason) {
  std::unique_lock lock(mu_);
  spdlog::warn("agent: revocation requested by uid {} (pid {})", caller.uid, caller.pid);
  auto_reattest_ = false;
  revoke_all_locked("revoked by admin: " + reason, true);
  send_reports(lock, false);
  return ok();
}

Result<AgentStatus> Agent::reattest(const os::Selectors& caller) {
  std::unique_lock lock(mu_);
  spdlog::info("agent: re-attestation requested by uid {} (pid {})", caller.uid, caller.pid);
  send_reports(lock, true);
  auto r = reattest(lock, "requested by admin");
  if (!r) return fail(std::move(r).error());
  return status_locked();
}

}  // namespace warden::agent
