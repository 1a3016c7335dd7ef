#pragma once
// A WorkloadService for tests: canned answers, records what it was asked. Calls come from the
// server's threads: tests read a copy of the records through synced().

#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/api/workload_service.h"

namespace warden::agent::test {

class FakeWorkloadService : public WorkloadService {
 public:
  struct Records {
    os::Selectors last_caller;
    TokenRequest last_token;
    ProofRequest last_proof;
    std::string sealed_name;
    std::size_t sealed_allow = 0;
    std::string sealed_value;
    std::vector<SelectorMatch> sealed_matches;
    std::string revoked_reason;
    std::set<std::thread::id> token_threads;  ///< threads token() was called on
  };

  /// From now on, tokens, proofs and secrets go only to a caller `match` matches (as the agent
  /// gives them only to the selectors a policy or a secret names); others get kPermissionDenied.
  void allow_only(SelectorMatch match) {
    std::lock_guard lock(mu_);
    allowed_ = std::move(match);
  }

  Result<TokenResponse> token(const os::Selectors& caller, const TokenRequest& request) override {
    std::lock_guard lock(mu_);
    if (!allowed(caller)) return fail(ErrorCode::kPermissionDenied, "token: no rule matches");
    r_.last_caller = caller;
    r_.last_token = request;
    r_.token_threads.insert(std::this_thread::get_id());
    return TokenResponse{"eyJ.fake.token", "DPoP", "jti-1", 1'900'000'000};
  }
  Result<ProofResponse> proof(const os::Selectors& caller, const ProofRequest& request) override {
    std::lock_guard lock(mu_);
    if (!allowed(caller)) return fail(ErrorCode::kPermissionDenied, "proof: not this caller's");
    r_.last_caller = caller;
    r_.last_proof = request;
    return ProofResponse{"eyJ.fake.proof"};
  }
  Result<SecretBytes> secret(const os::Selectors& caller, const std::string& name) override {
    std::lock_guard lock(mu_);
    r_.last_caller = caller;
    if (name != "db") return fail(ErrorCode::kNotFound, "secret " + name + ": not sealed");
    if (!allowed(caller)) return fail(ErrorCode::kPermissionDenied, "secret db: not allowed");
    const std::string v = "hunter2";
    return SecretBytes(
        ByteSpan(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));  // NOLINT
  }
  Result<AgentStatus> status() override { return AgentStatus{"serving", "", 1'700'000'000, true}; }
  Status seal_secret(const os::Selectors& caller, const SealRequest& request) override {
    std::lock_guard lock(mu_);
    r_.last_caller = caller;
    r_.sealed_name = request.name;
    r_.sealed_allow = request.allow.size();
    r_.sealed_value.assign(request.value.view().begin(), request.value.view().end());
    r_.sealed_matches = request.allow;
    return ok();
  }
  Status revoke(const os::Selectors&, const std::string& reason) override {
    std::lock_guard lock(mu_);
    r_.revoked_reason = reason;
    return ok();
  }
  Result<AgentStatus> reattest(const os::Selectors&) override {
    return AgentStatus{"reattesting", "admin request", 1'700'000'001, true};
  }

  /// A copy of the records, taken under the lock the server's calls hold (the socket round trip
  /// that carried the answer orders nothing for the memory model).
  Records synced() {
    std::lock_guard lock(mu_);
    return r_;
  }

 private:
  bool allowed(const os::Selectors& caller) const { return !allowed_ || allowed_->matches(caller); }

  std::mutex mu_;
  Records r_;
  std::optional<SelectorMatch> allowed_;
};

}  // namespace warden::agent::test
