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
#include <mutex>
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

// Every item is due at once; the bench adds one, notifies and waits for it.
class MemoryOutbox final : public issuer::ssf::PushQueue {
 public:
  void add(PushItem item) {
    std::lock_guard lock(mutex_);
    pending_.push_back(std::move(item));
  }
  Result<std::vector<PushItem>> claim(std::string_view, std::int64_t, std::int64_t,
                                      std::size_t max) override {
    std::lock_guard lock(mutex_);
    const auto n = std::min(max, pending_.size());
    std::vector<PushItem> out(pending_.begin(), pending_.begin() + static_cast<long>(n));
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<long>(n));
    return out;
  }
  Status delivered(const PushItem&, std::int64_t) override { return ok(); }
  Status failed(const PushItem& item, std::int64_t, std::string_view error) override {
    std::fprintf(stderr, "delivery of seq %lld failed: %.*s\n", static_cast<long long>(item.seq),
                 static_cast<int>(error.size()), error.data());
    std::exit(1);
  }

 private:
  std::mutex mutex_;
  std::vector<PushItem> pending_;
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
  std::size_t received = 0;
  Steady::time_point arrival;
  test::Receiver rx(
      [&](const test::ReceivedPost&) {
        std::lock_guard lock(mutex);
        arrival = Steady::now();
        ++received;
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
  std::vector<double> ms;
  for (int i = 0; i < events + 10; ++i) {  // the first 10 warm up
    outbox.add(PushItem{"stream-" + std::to_string(i % 8), i, url, "Bearer bench", set, 0});
    const auto start = Steady::now();
    deliverer.notify();
    std::unique_lock lock(mutex);
    if (!arrived.wait_for(lock, std::chrono::seconds(10),
                          [&] { return received == static_cast<std::size_t>(i) + 1; })) {
      std::fprintf(stderr, "event %d did not arrive\n", i);
      return 1;
    }
    if (i >= 10) ms.push_back(std::chrono::duration<double, std::milli>(arrival - start).count());
  }
  deliverer.stop();
  std::printf("ssf push over HTTPS (fresh TLS connection per SET), %d events, %zu workers\n",
              events, workers);
  std::printf(
      "notify -> receiver has the SET: p50 %.2f ms  p90 %.2f ms  p99 %.2f ms  max %.2f ms\n",
      percentile(ms, 0.50), percentile(ms, 0.90), percentile(ms, 0.99), percentile(ms, 1.0));
  return 0;
}
