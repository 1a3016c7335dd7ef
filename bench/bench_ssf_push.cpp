// RFC 8935 push delivery: latency from PushDeliverer::notify() (an event committed) to the
// receiver having read the SET's body, over HTTPS (TLS 1.3, a fresh connection per SET, the
// certificate checked against a test CA) to a local receiver that answers 202. One event at a
// time, so the figure is the path's latency, not a queue's. The outbox is in memory: the
// store's claim and record queries come on top. Usage: bench_ssf_push [events=500] [workers=4]
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "issuer/ssf/push.h"
#include "tests/integration/issuer/ssf_receiver.h"
#include "tests/support/process.h"

namespace {
using namespace warden;
using issuer::ssf::PushItem;
using Steady = std::chrono::steady_clock;

// Every item is due at once. Like the store's claim (issuer/store/sql_ssf.cpp), it hands out
// only each stream's oldest undelivered item, so a stream's next SET waits for a new claim.
class MemoryOutbox final : public issuer::ssf::PushQueue {
 public:
  void add(PushItem item) {
    std::lock_guard lock(mutex_);
    streams_[item.stream_id].push_back(std::move(item));
  }
  Result<std::vector<PushItem>> claim(std::string_view, std::int64_t, std::int64_t,
                                      std::size_t max) override {
    std::lock_guard lock(mutex_);
    std::vector<PushItem> out;
    for (const auto& [id, items] : streams_) {
      if (out.size() == max) break;
      if (!items.empty() && in_flight_.insert(id).second) out.push_back(items.front());
    }
    return out;
  }
  Status delivered(const PushItem& item, std::int64_t) override {
    std::lock_guard lock(mutex_);
    streams_[item.stream_id].pop_front();
    in_flight_.erase(item.stream_id);
    return ok();
  }
  Status failed(const PushItem& item, std::int64_t, std::string_view error) override {
    std::fprintf(stderr, "delivery of seq %lld failed: %.*s\n", static_cast<long long>(item.seq),
                 static_cast<int>(error.size()), error.data());
    std::exit(1);
  }

 private:
  std::mutex mutex_;
  std::map<std::string, std::deque<PushItem>> streams_;
  std::set<std::string> in_flight_;
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(static_cast<double>(v.size()) * p))];
}

}  // namespace

int main(int argc, char** argv) {
  const int events = argc > 1 ? std::atoi(argv[1]) : 500;
  const auto workers = static_cast<std::size_t>(argc > 2 ? std::atoi(argv[2]) : 4);
  spdlog::set_level(spdlog::level::warn);
  test::TempDir dir("warden-bench-ssf");
  const auto pki = test::run_command(
      {std::string(WARDEN_SOURCE_DIR) + "/scripts/make-test-pki", dir.path().string()});
  if (pki.exit_code != 0) {
    std::fprintf(stderr, "make-test-pki failed: %s\n", pki.out.c_str());
    return 1;
  }

  std::mutex mutex;
  std::condition_variable arrived;
  std::vector<Steady::time_point> arrivals;
  test::Receiver rx(
      [&](const test::ReceivedPost&) {
        std::lock_guard lock(mutex);
        arrivals.push_back(Steady::now());
        arrived.notify_all();
        return test::ReceiverReply{test::ReceiverReply::Mode::kRespond, 202, {}, {}};
      },
      dir.path());

  MemoryOutbox outbox;
  SystemClock clock;
  issuer::ssf::PushOptions options;
  options.owner = "bench";
  options.workers = workers;
  options.ca_file = dir.path() / "ca.crt";
  options.poll_interval = std::chrono::seconds(30);  // only notify() starts a delivery
  issuer::ssf::PushDeliverer deliverer(outbox, clock, options);
  if (auto s = deliverer.start(); !s) {
    std::fprintf(stderr, "%s\n", s.error().message.c_str());
    return 1;
  }
  // A SET of realistic size: a CAEP session-revoked event signed with ES256 is ~700 bytes.
  const std::string set(700, 'S');
  const std::string url = rx.url("/events", "localhost");
  std::int64_t seq = 0;
  // Adds `n` events over 8 streams, notifies once and returns each one's latency (ms).
  const auto run = [&](int n) -> std::vector<double> {
    std::unique_lock lock(mutex);
    arrivals.clear();
    lock.unlock();
    for (int i = 0; i < n; ++i, ++seq) {
      outbox.add(PushItem{"stream-" + std::to_string(seq % 8), seq, url, "Bearer bench", set, 0});
    }
    const auto start = Steady::now();
    deliverer.notify();
    lock.lock();
    if (!arrived.wait_for(lock, std::chrono::seconds(30),
                          [&] { return arrivals.size() == static_cast<std::size_t>(n); })) {
      std::fprintf(stderr, "%zu of %d events arrived\n", arrivals.size(), n);
      std::exit(1);
    }
    std::vector<double> ms;
    for (const auto& at : arrivals) {
      ms.push_back(std::chrono::duration<double, std::milli>(at - start).count());
    }
    return ms;
  };
  const auto report = [](const char* what, const std::vector<double>& ms) {
    std::printf("%-36s p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  max %6.2f ms\n", what,
                percentile(ms, 0.50), percentile(ms, 0.90), percentile(ms, 0.99),
                percentile(ms, 1.0));
  };
  for (int i = 0; i < 10; ++i) (void)run(1);  // warm-up
  std::vector<double> one_at_a_time;
  for (int i = 0; i < events; ++i) one_at_a_time.push_back(run(1).front());
  const auto burst = run(events);
  deliverer.stop();
  std::printf("ssf push over HTTPS (fresh TLS 1.3 connection per SET), %d events, %zu workers\n",
              events, workers);
  report("one at a time, notify -> received:", one_at_a_time);
  report("all at once (8 streams):", burst);
  return 0;
}
