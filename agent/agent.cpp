// The agent's core: construction, the lifecycle and its events, start, the periodic work,
// reload and shutdown. Attestation is in agent_attest.cpp, the workload API in agent_tokens.cpp,
// revocation and posture in agent_posture.cpp.
#include "agent/agent.h"

#include <algorithm>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include "attest/token/json.h"

namespace warden::agent {

Agent::Agent(AgentOptions options)
    : options_(std::move(options)),
      tpm_(options_.config.tcti),
      store_(options_.config.state_dir),
      backoff_(options_.retry_base, options_.retry_max, *options_.random),
      reports_(*options_.clock, *options_.random, options_.reports) {}

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

Status Agent::start() {
  std::unique_lock lock(mu_);
  // An agent SIGKILLed mid-operation left its objects in a TPM without resource manager, where
  // they would fill its slots for good (tests/fault: SigkillDuringTheFirstEnrollment...).
  if (auto flushed = tpm_.flush_leftover_objects(); !flushed) {
    spdlog::debug("agent: leftover TPM objects not flushed: {}", flushed.error().message);
  } else if (*flushed > 0) {
    spdlog::info("agent: flushed {} transient TPM object(s) left by an earlier process", *flushed);
  }
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
  lock.unlock();
  auto probe = tpm_.probe();
  lock.lock();
  if (!probe) {
    transition(AgentState::kDegraded, probe.error().message);
    next_retry_ = now() + 1;
    return probe;
  }
  return reattest(lock, "start");
}

std::chrono::milliseconds Agent::tick() {
  constexpr std::chrono::milliseconds kPeriod(1000);
  std::unique_lock lock(mu_);
  cache_.expire(now());
  // Reports first, so that a round replacing the binding key comes after every report it signed.
  const auto round_why = [&]() -> const char* {
    const std::int64_t t = now();
    const AgentState s = lifecycle_.state();
    if (s == AgentState::kDegraded || (s == AgentState::kRevoked && auto_reattest_))
      return next_retry_ != 0 && t >= next_retry_ ? "retry" : nullptr;
    if (s != AgentState::kServing || device_token_exp_ == 0) return nullptr;
    // Renew at two thirds of the device token's life so that workloads never see a gap.
    const std::int64_t life = std::max<std::int64_t>(device_token_exp_ - device_token_iat_, 3);
    return t >= device_token_iat_ + life * 2 / 3 ? "device token renewal" : nullptr;
  };
  send_reports(lock, round_why() != nullptr);
  if (const char* why = round_why()) (void)reattest(lock, why);
  return std::min(kPeriod, reports_.next_due().value_or(kPeriod));
}

void Agent::drop_credentials_locked() {
  ++epoch_;
  cache_.clear();
  // A signer still held by a call signing outside mu_ is freed (cleansed) by that call.
  if (session_key_ && session_key_.use_count() == 1) session_key_->wipe();
  session_key_.reset();
  tpm_signer_.reset();
  proof_signer_.reset();
  device_token_.clear();
  device_token_exp_ = 0;
}

void Agent::shutdown() {
  std::lock_guard lock(mu_);
  drop_credentials_locked();
  reports_.clear();  // a restarted agent attests again: the issuer learns the posture from that
  pending_reattest_.reset();
}

void Agent::reload(const AgentConfig& config) {
  std::unique_lock lock(mu_);
  const bool proof_mode_changed = config.proof_mode != options_.config.proof_mode;
  const std::string tcti = options_.config.tcti;
  const auto state_dir = options_.config.state_dir;
  options_.config = config;
  options_.config.tcti = tcti;
  options_.config.state_dir = state_dir;
  spdlog::info("agent: configuration reloaded");
  if (proof_mode_changed && enrollment_) (void)reattest(lock, "proof mode changed");
}

AgentStatus Agent::status_locked() const {
  return AgentStatus{std::string(to_string(lifecycle_.state())), reason_, since_,
                     enrollment_.has_value(), reports_.pending()};
}

Result<AgentStatus> Agent::status() {
  std::lock_guard lock(mu_);
  return status_locked();
}

}  // namespace warden::agent
