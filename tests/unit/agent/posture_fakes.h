#pragma once
// Fakes at the posture sources' interfaces: the observer, the clock, the TPM probe, the IMA
// counter, the directory watcher and the PCR extender.

#include <chrono>
#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "agent/posture/container_log.h"
#include "agent/posture/ima_source.h"
#include "agent/posture/policy.h"
#include "agent/posture/posture.h"
#include "agent/posture/source.h"
#include "attest/pcr_values.h"

namespace warden::agent::posture::test {

class FakeObserver final : public Observer {
 public:
  void observe(Observation observation) override { seen.push_back(std::move(observation)); }
  [[nodiscard]] std::vector<Trigger> triggers() const {
    std::vector<Trigger> out;
    for (const auto& o : seen) out.push_back(o.trigger);
    return out;
  }
  std::vector<Observation> seen;
};

/// Time moves only when the test says so.
class FakeClock {
 public:
  NowFn now() {
    return [this] { return now_; };
  }
  void advance(std::chrono::milliseconds by) { now_ += by; }

 private:
  SteadyTime now_{std::chrono::hours(1)};
};

/// Returns `reading` (or `error` when set) on every read; counts reads.
class FakeTpmProbe final : public TpmProbe {
 public:
  Result<Reading> read() override {
    ++reads;
    if (unreachable) return fail(ErrorCode::kIo, "tpm: connection refused");
    return reading;
  }
  Reading reading;
  bool unreachable = false;
  int reads = 0;
};

class FakeImaCounter final : public ImaCounter {
 public:
  Result<std::uint64_t> read() override {
    if (unreadable) return fail(ErrorCode::kIo, "posture: IMA count: unreadable");
    return count;
  }
  std::uint64_t count = 0;
  bool unreadable = false;
};

/// Hands out one id per directory; `missing` directories fail with kNotFound.
class FakeDirWatcher final : public DirWatcher {
 public:
  Result<int> watch(const std::filesystem::path& dir, os::WatchKind kind) override {
    if (missing.count(dir) != 0) return fail(ErrorCode::kNotFound, "no such directory");
    auto [it, inserted] = ids.try_emplace(dir, next_id);
    if (inserted) ++next_id;
    kinds[dir] = kind;
    return it->second;
  }
  [[nodiscard]] int id_of(const std::filesystem::path& dir) const {
    auto it = ids.find(dir);
    return it == ids.end() ? -1 : it->second;
  }
  std::map<std::filesystem::path, int> ids;
  std::map<std::filesystem::path, os::WatchKind> kinds;
  std::set<std::filesystem::path> missing;
  int next_id = 1;
};

/// PCRs in memory, all zero at first.
class FakePcrExtender final : public PcrExtender {
 public:
  FakePcrExtender() { values.init_bank(TpmAlg::kSha256); }
  Status extend(unsigned pcr, TpmAlg alg, ByteSpan digest) override {
    if (fail_extends) return fail(ErrorCode::kIo, "extend refused");
    return values.extend(alg, pcr, digest);
  }
  Result<Bytes> read(unsigned pcr, TpmAlg alg) override {
    if (auto* v = values.get(alg, pcr)) return *v;
    return Bytes(32, 0);
  }
  attest::PcrValues values;
  bool fail_extends = false;
};

/// An inotify event as the kernel would deliver it.
inline os::FsEvent dir_event(int watch, std::string_view name, bool added) {
  os::FsEvent e;
  e.watch = watch;
  e.name = name;
  e.is_dir = true;
  e.created = added;
  e.deleted = !added;
  return e;
}
inline os::FsEvent file_event(int watch, std::string_view name) {
  os::FsEvent e;
  e.watch = watch;
  e.name = name;
  return e;
}

}  // namespace warden::agent::posture::test
