// PushDeliverer (issuer/ssf/push.h) over an in-memory PushQueue, delivering to real receivers on
// loopback. Time in the queue is a test clock: backoff is asserted as next_attempt_at, never
// waited for.
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>

#include <gtest/gtest.h>

#include "issuer/ssf/push.h"
#include "tests/integration/issuer/ssf_receiver.h"
#include "tests/support/process.h"

namespace warden::issuer::ssf {
namespace {
using test::Receiver;
using test::ReceiverReply;
using namespace std::chrono_literals;
constexpr std::int64_t kT0 = 1'800'000'000;

class TestClock final : public Clock {
 public:
  [[nodiscard]] std::chrono::system_clock::time_point now() const override {
    return std::chrono::system_clock::time_point(std::chrono::seconds(now_.load()));
  }
  void set(std::int64_t t) { now_.store(t); }

 private:
  std::atomic<std::int64_t> now_{kT0};
};

// The outbox contract in memory: per stream, claim hands out a prefix of the undelivered items
// in seq order, ending before the first one that is not due or is leased.
class FakeQueue final : public PushQueue {
 public:
  struct Row {
    PushItem item;
    std::int64_t next_attempt = 0;
    std::int64_t lease_until = 0;
    bool done = false;
    std::string last_error;
  };
  struct Failure {
    std::string stream_id;
    std::int64_t seq;
    std::int64_t next_attempt_at;
    std::string error;
  };

  void add(const std::string& stream, std::int64_t seq, const std::string& url,
           std::uint32_t attempts = 0, std::string authorization = "Bearer rx") {
    std::lock_guard lock(mutex_);
    Row row;
    row.item = PushItem{
        stream,  seq, url, std::move(authorization), "set-" + stream + "-" + std::to_string(seq),
        attempts};
    rows_.push_back(std::move(row));
  }

  Result<std::vector<PushItem>> claim(std::string_view, std::int64_t now, std::int64_t lease_s,
                                      std::size_t max) override {
    std::lock_guard lock(mutex_);
    ++claims_;
    cv_.notify_all();
    if (after_claim) after_claim();
    std::map<std::string, std::vector<Row*>> by_stream;
    for (auto& row : rows_) {
      if (!row.done) by_stream[row.item.stream_id].push_back(&row);
    }
    std::vector<PushItem> out;
    for (auto& [stream, rows] : by_stream) {
      std::sort(rows.begin(), rows.end(),
                [](const Row* a, const Row* b) { return a->item.seq < b->item.seq; });
      for (Row* row : rows) {
        if (row->next_attempt > now) break;
        if (heads_only && row != rows.front()) break;
        if (row->lease_until > now) continue;  // ours, in flight: later ones may follow
        if (out.size() == max) break;
        row->lease_until = now + lease_s;
        out.push_back(row->item);
      }
    }
    return out;
  }

  Status delivered(const PushItem& item, std::int64_t) override {
    std::lock_guard lock(mutex_);
    Row& row = find(item);
    row.done = true;
    delivered_.push_back(item.stream_id + "/" + std::to_string(item.seq));
    cv_.notify_all();
    return ok();
  }

  Status failed(const PushItem& item, std::int64_t next_attempt_at,
                std::string_view error) override {
    std::lock_guard lock(mutex_);
    Row& row = find(item);
    row.next_attempt = next_attempt_at;
    row.lease_until = 0;
    ++row.item.attempts;
    row.last_error = std::string(error);
    failures_.push_back({item.stream_id, item.seq, next_attempt_at, std::string(error)});
    cv_.notify_all();
    return ok();
  }

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 20s) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [&] { return pred(*this); });
  }
  std::vector<std::string> delivered_list() {
    std::lock_guard lock(mutex_);
    return delivered_;
  }
  std::vector<Failure> failures() {
    std::lock_guard lock(mutex_);
    return failures_;
  }

  // Read under the lock by wait() predicates.
  std::vector<std::string> delivered_;
  std::vector<Failure> failures_;
  int claims_ = 0;
  std::function<void()> after_claim;  // runs inside claim(), e.g. to move the clock on
  bool heads_only = false;            // claim only each stream's oldest undelivered item

 private:
  Row& find(const PushItem& item) {
    for (auto& row : rows_) {
      if (row.item.stream_id == item.stream_id && row.item.seq == item.seq) return row;
    }
    ADD_FAILURE() << "unknown item " << item.stream_id << "/" << item.seq;
    return rows_.front();
  }
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<Row> rows_;
};

Receiver::Behaviour answer(unsigned status, std::string body = {}, std::string type = {}) {
  return [=](const test::ReceivedPost&) {
    return ReceiverReply{ReceiverReply::Mode::kRespond, status, type, body};
  };
}

PushOptions options() {
  PushOptions o;
  o.owner = "replica-1";
  o.workers = 2;
  o.timeout = 10s;
  o.backoff_initial = 4s;
  o.backoff_max = 20s;
  o.lease = 60s;
  o.allow_http_loopback = true;
  o.poll_interval = 60s;  // tests notify(); a poll never rescues a missed wake-up
  return o;
}

std::vector<std::string> bodies(const Receiver& rx) {
  std::vector<std::string> out;
  for (const auto& p : rx.received()) out.push_back(p.body);
  return out;
}

TEST(PushBackoff, DoublesFromTheInitialDelayUpToTheMaximum) {
  PushOptions o = options();  // 4 s, max 20 s
  EXPECT_EQ(next_attempt_at(kT0, 0, o, 0.0), kT0 + 4);
  EXPECT_EQ(next_attempt_at(kT0, 1, o, 0.0), kT0 + 8);
  EXPECT_EQ(next_attempt_at(kT0, 2, o, 0.0), kT0 + 16);
  EXPECT_EQ(next_attempt_at(kT0, 3, o, 0.0), kT0 + 20);
  EXPECT_EQ(next_attempt_at(kT0, 4'000'000'000U, o, 0.0), kT0 + 20);
  // Jitter takes off up to half of the delay, never all of it.
  EXPECT_EQ(next_attempt_at(kT0, 1, o, 0.999999), kT0 + 4);
  EXPECT_EQ(next_attempt_at(kT0, 3, o, 0.5), kT0 + 15);
  o.backoff_initial = 0s;
  EXPECT_EQ(next_attempt_at(kT0, 0, o, 0.9), kT0 + 1);
  // Milliseconds (the [ssf] keys) round up to the queue's whole seconds.
  o.backoff_initial = 500ms;
  o.backoff_max = 30'500ms;
  EXPECT_EQ(next_attempt_at(kT0, 0, o, 0.0), kT0 + 1);
  EXPECT_EQ(next_attempt_at(kT0, 9, o, 0.0), kT0 + 31);
}

TEST(PushVerdicts, AnyTwoHundredIsDelivered) {
  for (unsigned s : {200U, 202U, 204U}) {
    EXPECT_EQ(classify_response({s, "", "", false}).kind, PushVerdict::Kind::kDelivered) << s;
  }
}

TEST(PushVerdicts, FourHundredIsARefusalWithTheReceiversErrorCode) {
  auto v =
      classify_response({400, "application/json",
                         R"({"err":"invalid_key","description":"kid \"k9\" unknown"})", false});
  EXPECT_EQ(v.kind, PushVerdict::Kind::kRefused);
  EXPECT_NE(v.detail.find("err=\"invalid_key\""), std::string::npos) << v.detail;
  EXPECT_NE(v.detail.find("k9"), std::string::npos) << v.detail;
  v = classify_response({400, "text/html", "<h1>Bad Request</h1>", false});
  EXPECT_EQ(v.kind, PushVerdict::Kind::kRefused);
  EXPECT_NE(v.detail.find("no RFC 8935 error object"), std::string::npos) << v.detail;
  v = classify_response({400, "application/json", R"({"err":7})", false});
  EXPECT_EQ(v.kind, PushVerdict::Kind::kRefused);
  EXPECT_NE(v.detail.find("no \"err\""), std::string::npos) << v.detail;
}

TEST(PushVerdicts, EverythingElseIsRetried) {
  for (unsigned s : {301U, 307U, 401U, 403U, 404U, 429U, 500U, 503U}) {
    auto v = classify_response({s, "text/plain", "down\r\n", false});
    EXPECT_EQ(v.kind, PushVerdict::Kind::kRetry) << s;
    EXPECT_NE(v.detail.find("HTTP " + std::to_string(s)), std::string::npos);
    EXPECT_EQ(v.detail.find('\r'), std::string::npos) << "untrusted bytes quoted";
  }
}

TEST(PushDeliverer, DeliversEachSetInOrderWithTheStreamsCredential) {
  Receiver rx(answer(202));
  FakeQueue q;
  for (int seq = 1; seq <= 5; ++seq) q.add("s1", seq, rx.url());
  TestClock clock;
  PushDeliverer d(q, clock, options());
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 5; }));
  d.stop();
  EXPECT_EQ(bodies(rx),
            (std::vector<std::string>{"set-s1-1", "set-s1-2", "set-s1-3", "set-s1-4", "set-s1-5"}));
  for (const auto& p : rx.received()) {
    EXPECT_EQ(p.authorization, "Bearer rx");
    EXPECT_EQ(p.content_type, "application/secevent+jwt");
  }
  EXPECT_EQ(d.stats().delivered, 5u);
  EXPECT_TRUE(q.failures().empty());
}

TEST(PushDeliverer, AQueueOfHeadsOnlyIsClaimedAgainAfterEachDeliveryNotAtThePoll) {
  Receiver rx(answer(202));
  FakeQueue q;
  q.heads_only = true;
  for (int seq = 1; seq <= 4; ++seq) q.add("s1", seq, rx.url());
  q.add("s2", 1, rx.url());
  TestClock clock;
  PushDeliverer d(q, clock, options());  // poll every 60 s, beyond the wait below
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 5; }));
  EXPECT_EQ(bodies(rx).size(), 5u);
}

TEST(PushDeliverer, NotifyClaimsAtOnceWithoutWaitingForThePoll) {
  Receiver rx(answer(202));
  FakeQueue q;
  TestClock clock;
  PushDeliverer d(q, clock, options());  // poll every 60 s
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.claims_ >= 1; }));
  q.add("s1", 1, rx.url());
  d.notify();
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 1; }));
}

TEST(PushDeliverer, PollsWhenNobodyNotifies) {
  Receiver rx(answer(202));
  FakeQueue q;
  TestClock clock;
  PushOptions o = options();
  o.poll_interval = 20ms;
  PushDeliverer d(q, clock, o);
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.claims_ >= 1; }));
  q.add("s1", 1, rx.url());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 1; }));
}

TEST(PushDeliverer, AFailingReceiverIsRetriedWithBackoffAndGetsEverythingWhenBack) {
  Receiver rx(answer(503, "maintenance", "text/plain"));
  FakeQueue q;
  q.add("s1", 1, rx.url());
  q.add("s1", 2, rx.url());
  TestClock clock;
  PushDeliverer d(q, clock, options());
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.failures_.size() == 2; }));
  auto failures = q.failures();
  // The head was sent and failed; the item behind it was not sent, and waits as long.
  EXPECT_EQ(failures[0].seq, 1);
  EXPECT_GE(failures[0].next_attempt_at, kT0 + 2);
  EXPECT_LE(failures[0].next_attempt_at, kT0 + 4);
  EXPECT_NE(failures[0].error.find("HTTP 503"), std::string::npos) << failures[0].error;
  EXPECT_EQ(failures[1].seq, 2);
  EXPECT_EQ(failures[1].next_attempt_at, failures[0].next_attempt_at);
  EXPECT_NE(failures[1].error.find("not sent"), std::string::npos) << failures[1].error;
  EXPECT_EQ(bodies(rx), std::vector<std::string>{"set-s1-1"});

  // Second failure: the delay doubles (attempts 1: 8 s, jittered to 4-8 s).
  clock.set(failures[0].next_attempt_at);
  d.notify();
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.failures_.size() == 4; }));
  failures = q.failures();
  EXPECT_EQ(failures[2].seq, 1);
  EXPECT_GE(failures[2].next_attempt_at, failures[0].next_attempt_at + 4);
  EXPECT_LE(failures[2].next_attempt_at, failures[0].next_attempt_at + 8);

  // Not due yet: a claim after notify finds nothing to send.
  const auto sent = rx.received().size();
  EXPECT_EQ(sent, 2u);
  int claims = 0;
  q.wait([&](FakeQueue& f) { return claims = f.claims_, true; });
  d.notify();
  ASSERT_TRUE(q.wait([&](FakeQueue& f) { return f.claims_ > claims; }));
  EXPECT_EQ(rx.received().size(), sent);

  // The receiver is back and the retry time has come: both, in order.
  rx.set_behaviour(answer(202));
  clock.set(failures[2].next_attempt_at);
  d.notify();
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 2; }));
  EXPECT_EQ(q.delivered_list(), (std::vector<std::string>{"s1/1", "s1/2"}));
  const auto all = bodies(rx);
  EXPECT_EQ(all.size(), sent + 2);
  EXPECT_EQ(all[all.size() - 2], "set-s1-1");
  EXPECT_EQ(all.back(), "set-s1-2");
  EXPECT_EQ(d.stats().failed, 2u);
}

TEST(PushDeliverer, BackoffStaysAtTheMaximumForAReceiverDownLong) {
  Receiver rx(answer(500));
  FakeQueue q;
  q.add("s1", 1, rx.url(), /*attempts=*/40);
  TestClock clock;
  PushDeliverer d(q, clock, options());
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.failures_.size() == 1; }));
  const auto f = q.failures()[0];
  EXPECT_GE(f.next_attempt_at, kT0 + 10);
  EXPECT_LE(f.next_attempt_at, kT0 + 20);
}

TEST(PushDeliverer, ARefusedSetIsRecordedDeliveredAndDoesNotBlockTheStream) {
  Receiver rx([](const test::ReceivedPost& p) {
    if (p.body == "set-s1-1") {
      return ReceiverReply{ReceiverReply::Mode::kRespond, 400, "application/json",
                           R"({"err":"invalid_audience","description":"not for us"})"};
    }
    return ReceiverReply{ReceiverReply::Mode::kRespond, 202, {}, {}};
  });
  FakeQueue q;
  q.add("s1", 1, rx.url());
  q.add("s1", 2, rx.url());
  TestClock clock;
  PushDeliverer d(q, clock, options());
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 2; }));
  EXPECT_EQ(q.delivered_list(), (std::vector<std::string>{"s1/1", "s1/2"}));
  EXPECT_TRUE(q.failures().empty());
  EXPECT_EQ(d.stats().refused, 1u);
  EXPECT_EQ(d.stats().delivered, 1u);
}

TEST(PushDeliverer, AFailedStreamDoesNotHoldBackAnother) {
  Receiver down(answer(500));
  Receiver up(answer(202));
  FakeQueue q;
  q.add("a-down", 1, down.url());
  q.add("a-down", 2, down.url());
  q.add("b-up", 1, up.url());
  q.add("b-up", 2, up.url());
  TestClock clock;
  PushOptions o = options();
  o.workers = 1;
  PushDeliverer d(q, clock, o);
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 2; }));
  EXPECT_EQ(q.delivered_list(), (std::vector<std::string>{"b-up/1", "b-up/2"}));
  EXPECT_EQ(bodies(down), std::vector<std::string>{"set-a-down-1"});
}

TEST(PushDeliverer, AHangingReceiverDelaysNeitherOtherStreamsNorStop) {
  Receiver hang([](const test::ReceivedPost&) {
    return ReceiverReply{ReceiverReply::Mode::kHang, 0, {}, {}};
  });
  Receiver up(answer(202));
  FakeQueue q;
  q.add("a-hang", 1, hang.url());
  q.add("a-hang", 2, hang.url());
  TestClock clock;
  PushOptions o = options();
  o.timeout = 50s;  // far above any bound below: only a stop that aborts can meet it
  o.lease = 120s;
  PushDeliverer d(q, clock, o);
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(hang.wait_for(1));
  for (int seq = 1; seq <= 3; ++seq) q.add("b-up", seq, up.url());
  d.notify();
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 3; }));
  // One request per stream: the hanging stream's second item was never sent.
  EXPECT_EQ(hang.received().size(), 1u);
  const auto start = std::chrono::steady_clock::now();
  d.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 25s);
  // Nothing recorded for the aborted request: its lease runs out and it is sent again.
  EXPECT_TRUE(q.failures().empty());
}

TEST(PushDeliverer, StopsPromptlyWhileEveryWorkerWaitsOnAHangingReceiver) {
  Receiver hang([](const test::ReceivedPost&) {
    return ReceiverReply{ReceiverReply::Mode::kHang, 0, {}, {}};
  });
  FakeQueue q;
  q.add("s1", 1, hang.url());
  q.add("s2", 1, hang.url());
  TestClock clock;
  PushOptions o = options();
  o.timeout = 50s;
  o.lease = 120s;
  PushDeliverer d(q, clock, o);
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(hang.wait_for(2));
  const auto start = std::chrono::steady_clock::now();
  d.stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 25s);
  EXPECT_EQ(d.stats().delivered + d.stats().failed, 0u);
}

TEST(PushDeliverer, ManyStreamsOnManyWorkersArriveEachInOrderAndOnce) {
  Receiver rx(answer(202));
  FakeQueue q;
  constexpr int kStreams = 8;
  constexpr int kPerStream = 25;
  for (int seq = 1; seq <= kPerStream; ++seq) {
    for (int s = 0; s < kStreams; ++s) q.add("s" + std::to_string(s), seq, rx.url());
  }
  TestClock clock;
  PushOptions o = options();
  o.workers = 4;
  o.batch = 16;  // many claims, each partly behind items in flight
  PushDeliverer d(q, clock, o);
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == kStreams * kPerStream; }));
  std::map<std::string, std::vector<int>> arrived;
  for (const auto& body : bodies(rx)) {
    const auto dash = body.rfind('-');
    arrived[body.substr(4, dash - 4)].push_back(std::stoi(body.substr(dash + 1)));
  }
  ASSERT_EQ(arrived.size(), static_cast<std::size_t>(kStreams));
  std::vector<int> expected(kPerStream);
  for (int i = 0; i < kPerStream; ++i) expected[static_cast<std::size_t>(i)] = i + 1;
  for (const auto& [stream, seqs] : arrived) EXPECT_EQ(seqs, expected) << stream;
}

TEST(PushDeliverer, AnItemWhoseLeaseWouldRunOutMidRequestIsNotSent) {
  Receiver rx(answer(202));
  FakeQueue q;
  q.add("s1", 1, rx.url());
  q.add("s1", 2, rx.url());
  TestClock clock;
  // Claimed at kT0 with a 60 s lease; picked up at kT0 + 55, with a 10 s request timeout.
  q.after_claim = [&clock] { clock.set(kT0 + 55); };
  PushDeliverer d(q, clock, options());
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(test::wait_for([&] { return d.stats().lease_expired == 1; }, 20s));
  d.stop();
  EXPECT_TRUE(rx.received().empty());
  EXPECT_TRUE(q.delivered_list().empty());
  EXPECT_TRUE(q.failures().empty());
}

// Delivers one item to `url` and returns the error its failure was recorded with.
std::string first_failure(const std::string& url, const PushOptions& o = options()) {
  FakeQueue q;
  q.add("s1", 1, url);
  TestClock clock;
  PushDeliverer d(q, clock, o);
  EXPECT_TRUE(d.start());
  if (!q.wait([](FakeQueue& f) { return f.failures_.size() == 1; })) return "no failure";
  return q.failures()[0].error;
}

TEST(PushDeliverer, PlainHttpToANonLoopbackHostIsNeverSent) {
  EXPECT_NE(first_failure("http://192.0.2.10:8080/events").find("non-loopback"), std::string::npos);
}

TEST(PushDeliverer, PlainHttpNeedsAllowHttpLoopback) {
  Receiver rx(answer(202));
  PushOptions o = options();
  o.allow_http_loopback = false;
  EXPECT_NE(first_failure(rx.url(), o).find("not allowed"), std::string::npos);
  EXPECT_TRUE(rx.received().empty());
}

TEST(PushDeliverer, AMalformedEndpointIsRetriedNotSent) {
  EXPECT_NE(first_failure("https://rp.example/a\r\nX: y").find("control character"),
            std::string::npos);
}

class PushDelivererTls : public ::testing::Test {
 protected:
  void SetUp() override { test::make_pki(dir_.path()); }
  test::TempDir dir_{"warden-ssf-push-tls"};
};

TEST_F(PushDelivererTls, DeliversOverHttpsCheckedAgainstTheCaFile) {
  Receiver rx(answer(202), dir_.path());
  FakeQueue q;
  q.add("s1", 1, rx.url("/events", "localhost"));
  TestClock clock;
  PushOptions o = options();
  o.allow_http_loopback = false;
  o.ca_file = dir_.path() / "ca.crt";
  PushDeliverer d(q, clock, o);
  ASSERT_TRUE(d.start());
  ASSERT_TRUE(q.wait([](FakeQueue& f) { return f.delivered_.size() == 1; }));
  EXPECT_EQ(bodies(rx), std::vector<std::string>{"set-s1-1"});
}

TEST_F(PushDelivererTls, AReceiverOfAnotherCaIsNotTrusted) {
  Receiver rx(answer(202), dir_.path());
  test::TempDir other("warden-ssf-push-other");
  test::make_pki(other.path());
  PushOptions o = options();
  o.ca_file = other.path() / "ca.crt";
  const std::string error = first_failure(rx.url(), o);
  EXPECT_NE(error.find("certificate does not verify"), std::string::npos) << error;
  EXPECT_TRUE(rx.received().empty());
}

TEST(PushDelivererOptions, BadOptionsAreRefusedAtStart) {
  FakeQueue q;
  TestClock clock;
  PushOptions o = options();
  o.lease = 5s;  // shorter than the 10 s request timeout
  EXPECT_FALSE(PushDeliverer(q, clock, o).start());
  o = options();
  o.owner.clear();
  EXPECT_FALSE(PushDeliverer(q, clock, o).start());
  o = options();
  o.ca_file = "/nonexistent/ca.crt";
  EXPECT_FALSE(PushDeliverer(q, clock, o).start());
}

}  // namespace
}  // namespace warden::issuer::ssf
