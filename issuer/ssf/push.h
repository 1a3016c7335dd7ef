#pragma once
// RFC 8935 push delivery of Security Event Tokens: workers take due deliveries from the outbox
// (PushQueue), POST each SET to its stream's receiver and record the outcome.
//
// Outcomes (RFC 8935 §2.2, §2.3):
// - any 2xx (202 Accepted is the RFC's answer): delivered.
// - 400: the receiver refuses this SET for good (it does not parse, verify or fit); sending it
//   again cannot change that, and retrying would block the stream behind it forever. It is
//   recorded delivered, and the receiver's "err" and "description" are logged at warn.
// - anything else (3xx: redirects are not followed; 401/403: credentials the operator can fix;
//   5xx; timeouts; refused or broken connections; untrusted certificates): failed, retried
//   after a jittered exponential backoff, forever, so a receiver that comes back gets every
//   event.
// Order: the items of one stream are sent one at a time in claim (seq) order; when one fails,
// the stream's later items are not sent before it: they are recorded failed with the same next
// attempt. This relies on the queue's claim returning the items of a stream in seq order, none
// of them before an earlier undelivered one is due. A queue that hands out only each stream's
// head is claimed again as soon as a head is delivered, not at the next poll.
// Stop: requests in flight are aborted; nothing is recorded for them or for claimed items not
// yet sent: their leases expire and they are sent again (receivers dedupe by jti, RFC 8935 §2).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "issuer/ssf/http_client.h"
#include "issuer/ssf/push_queue.h"
#include "platform/base/clock.h"
#include "platform/base/error.h"

namespace warden::issuer::ssf {

struct PushOptions {
  std::string owner;        ///< this replica's lease owner id (unique among replicas)
  std::size_t workers = 4;  ///< concurrent requests: one slow receiver holds only one
  std::chrono::milliseconds timeout{10'000};  ///< one request, connect to the last byte read
  /// The queue counts in whole seconds: both are rounded up to seconds, at least 1.
  std::chrono::milliseconds backoff_initial{1'000};
  std::chrono::milliseconds backoff_max{300'000};
  std::chrono::seconds lease{60};  ///< must exceed timeout; an item is not sent near its end
  std::filesystem::path ca_file;   ///< empty: the system trust store
  bool allow_http_loopback = false;
  std::chrono::milliseconds poll_interval{1'000};  ///< claims this often without notify()
  std::size_t batch = 64;                          ///< items held at once (claimed, not done)
};

/// When a delivery that has failed `attempts` times before this failure is tried again:
/// now + d·(1 - unit/2) seconds, d = min(backoff_max, backoff_initial·2^attempts), at least 1.
/// `unit` in [0, 1) is the jitter (uniform random in the deliverer).
std::int64_t next_attempt_at(std::int64_t now, std::uint32_t attempts, const PushOptions& options,
                             double unit);

/// What a receiver's answer means for the SET (see the file comment).
struct PushVerdict {
  enum class Kind { kDelivered, kRefused, kRetry } kind = Kind::kRetry;
  std::string detail;  ///< refused: the receiver's err and description, quoted; retry: why
};
PushVerdict classify_response(const PostResponse& response);

struct PushStats {
  std::uint64_t delivered = 0;  ///< 2xx
  std::uint64_t refused = 0;    ///< 400, recorded delivered
  std::uint64_t failed = 0;     ///< attempts that will be retried
  std::uint64_t store_errors = 0;
  std::uint64_t lease_expired = 0;  ///< not sent: the lease would have run out mid-request
};

class PushDeliverer {
 public:
  /// `queue` and `clock` must outlive the deliverer; `clock` gives the times recorded in the
  /// queue (leases, next attempts).
  PushDeliverer(PushQueue& queue, const Clock& clock, PushOptions options);
  ~PushDeliverer();
  PushDeliverer(const PushDeliverer&) = delete;
  PushDeliverer& operator=(const PushDeliverer&) = delete;

  /// Starts the claim thread and the workers; kInvalidArgument for bad options or a CA file
  /// that cannot be loaded.
  Status start();
  /// Aborts requests in flight and joins every thread; returns at once if not started.
  void stop();
  /// Claims at once (an event was committed) instead of at the next poll.
  void notify();
  [[nodiscard]] PushStats stats() const;

 private:
  struct Held {  // a claimed item and the clock time its lease ends
    PushItem item;
    std::int64_t lease_end = 0;
  };
  struct Stream {
    std::vector<Held> items;  // in seq order
    bool busy = false;        // a worker is sending its head
  };

  void claim_loop();
  void work_loop(HttpClient& client, std::uint64_t seed);
  void hold(std::vector<PushItem> items, std::int64_t now);
  PushVerdict send(HttpClient& client, const PushItem& item);
  bool record(const PushItem& item, const PushVerdict& verdict, std::int64_t retry_at);
  std::map<std::string, Stream, std::less<>>::iterator next_ready();

  PushQueue& queue_;
  const Clock& clock_;
  PushOptions options_;
  std::vector<std::unique_ptr<HttpClient>> clients_;
  std::vector<std::thread> threads_;

  std::mutex mutex_;  // guards everything below
  std::condition_variable claim_cv_;
  std::condition_variable work_cv_;
  std::map<std::string, Stream, std::less<>> streams_;
  std::size_t held_ = 0;     // items in streams_, sent or not
  std::string last_served_;  // round robin over the streams
  bool more_ = false;        // the last claim filled the batch: more may be due
  bool wake_ = false;
  bool stopping_ = false;

  std::atomic<std::uint64_t> delivered_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<std::uint64_t> store_errors_{0};
  std::atomic<std::uint64_t> lease_expired_{0};
};

}  // namespace warden::issuer::ssf
