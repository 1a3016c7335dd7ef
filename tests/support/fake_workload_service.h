#pragma once
// A WorkloadService for tests: canned answers, records what it was asked.

#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "agent/api/workload_service.h"

namespace warden::agent::test {

class FakeWorkloadService : public WorkloadService {
 public:
  Result<TokenResponse> token(const os::Selectors& caller, const TokenRequest& request) override {
    last_caller = caller;
    last_token = request;
    {
      std::lock_guard lock(mu);
      token_threads.insert(std::this_thread::get_id());
    }
    return TokenResponse{"eyJ.fake.token", "DPoP", "jti-1", 1'900'000'000};
  }
  Result<ProofResponse> proof(const os::Selectors& caller, const ProofRequest& request) override {
    last_caller = caller;
    last_proof = request;
    return ProofResponse{"eyJ.fake.proof"};
  }
  Result<SecretBytes> secret(const os::Selectors& caller, const std::string& name) override {
    last_caller = caller;
    if (name != "db") return fail(ErrorCode::kNotFound, "secret " + name + ": not sealed");
    const std::string v = "hunter2";
    return SecretBytes(
        ByteSpan(reinterpret_cast<const std::uint8_t*>(v.data()), v.size()));  // NOLINT
  }
  Result<AgentStatus> status() override { return AgentStatus{"serving", "", 1'700'000'000, true}; }
  Status seal_secret(const os::Selectors& caller, const SealRequest& request) override {
    last_caller = caller;
    sealed_name = request.name;
    sealed_allow = request.allow.size();
    sealed_value.assign(request.value.view().begin(), request.value.view().end());
    sealed_matches = request.allow;
    return ok();
  }
  Status revoke(const os::Selectors&, const std::string& reason) override {
    revoked_reason = reason;
    return ok();
  }
  Result<AgentStatus> reattest(const os::Selectors&) override {
    return AgentStatus{"reattesting", "admin request", 1'700'000'001, true};
  }

  os::Selectors last_caller;
  TokenRequest last_token;
  ProofRequest last_proof;
  std::string sealed_name;
  std::size_t sealed_allow = 0;
  std::string sealed_value;
  std::vector<SelectorMatch> sealed_matches;
  std::string revoked_reason;
  std::mutex mu;
  std::set<std::thread::id> token_threads;  ///< threads token() was called on (under mu)
};

}  // namespace warden::agent::test
