#include "issuer/ssf/push.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

#include <spdlog/spdlog.h>

#include "attest/token/json.h"
#include "issuer/untrusted_text.h"

namespace warden::issuer::ssf {
namespace {

constexpr std::string_view kSetMediaType = "application/secevent+jwt";  // RFC 8417 §2.3

bool is_json(std::string_view content_type) {
  return content_type.substr(0, content_type.find(';')).find("json") != std::string_view::npos;
}

// The RFC 8935 §2.3 error object, or why the body is not one.
std::string refusal_detail(const PostResponse& response) {
  if (!is_json(response.content_type) || response.body_truncated) {
    return "no RFC 8935 error object (content type " + quote_untrusted(response.content_type, 64) +
           ")";
  }
  auto object = json::parse_object(response.body);
  if (!object) return "no RFC 8935 error object (" + object.error().message + ")";
  const auto err = json::get_string(*object, "err");
  const auto description = json::get_string(*object, "description");
  if (!err) return "no RFC 8935 error object (no \"err\" string)";
  return "err=" + quote_untrusted(*err, 64) +
         (description ? " description=" + quote_untrusted(*description, 256) : std::string());
}

}  // namespace

std::int64_t next_attempt_at(std::int64_t now, std::uint32_t attempts, const PushOptions& options,
                             double unit) {
  using std::chrono::ceil;
  using std::chrono::seconds;
  const std::int64_t max = std::max<std::int64_t>(1, ceil<seconds>(options.backoff_max).count());
  std::int64_t delay =
      std::clamp<std::int64_t>(ceil<seconds>(options.backoff_initial).count(), 1, max);
  for (std::uint32_t i = 0; i < attempts && delay < max; ++i) delay = std::min(max, delay * 2);
  const double jitter = std::clamp(unit, 0.0, 1.0) / 2.0;
  const auto jittered =
      static_cast<std::int64_t>(std::llround(static_cast<double>(delay) * (1.0 - jitter)));
  return now + std::max<std::int64_t>(1, jittered);
}

PushVerdict classify_response(const PostResponse& response) {
  using Kind = PushVerdict::Kind;
  if (response.status >= 200 && response.status < 300) return {Kind::kDelivered, {}};
  if (response.status == 400) return {Kind::kRefused, refusal_detail(response)};
  std::string detail = "HTTP " + std::to_string(response.status);
  if (!response.body.empty()) detail += " " + quote_untrusted(response.body, 128);
  return {Kind::kRetry, std::move(detail)};
}

PushDeliverer::PushDeliverer(PushQueue& queue, const Clock& clock, PushOptions options)
    : queue_(queue), clock_(clock), options_(std::move(options)) {}

PushDeliverer::~PushDeliverer() { stop(); }

Status PushDeliverer::start() {
  if (!threads_.empty()) return ok();
  if (options_.owner.empty() || options_.workers == 0 || options_.batch == 0 ||
      options_.poll_interval <= std::chrono::milliseconds::zero()) {
    return fail(ErrorCode::kInvalidArgument,
                "ssf push: owner, workers, batch and poll interval must be set");
  }
  if (options_.lease <= options_.timeout) {
    return fail(ErrorCode::kInvalidArgument, "ssf push: the lease (" +
                                                 std::to_string(options_.lease.count()) +
                                                 " s) must exceed the request timeout");
  }
  clients_.clear();
  for (std::size_t i = 0; i < options_.workers; ++i) {
    auto client = HttpClient::create(
        {options_.ca_file, options_.timeout, std::size_t{64} * 1024, options_.allow_http_loopback});
    if (!client) return fail(std::move(client).error().context("ssf push"));
    clients_.push_back(std::move(*client));
  }
  {
    std::lock_guard lock(mutex_);
    stopping_ = false;
    wake_ = true;  // items that came due while no deliverer ran
  }
  std::random_device seeds;
  for (auto& client : clients_) {
    threads_.emplace_back([this, c = client.get(), seed = seeds()] { work_loop(*c, seed); });
  }
  threads_.emplace_back([this] { claim_loop(); });
  return ok();
}

void PushDeliverer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (threads_.empty()) return;
    stopping_ = true;
  }
  for (auto& client : clients_) client->cancel();
  claim_cv_.notify_all();
  work_cv_.notify_all();
  for (auto& thread : threads_) thread.join();
  threads_.clear();
  clients_.clear();
  std::lock_guard lock(mutex_);
  streams_.clear();
  held_ = 0;
}

void PushDeliverer::notify() {
  {
    std::lock_guard lock(mutex_);
    wake_ = true;
  }
  claim_cv_.notify_one();
}

PushStats PushDeliverer::stats() const {
  return {delivered_.load(), refused_.load(), failed_.load(), store_errors_.load(),
          lease_expired_.load()};
}

void PushDeliverer::claim_loop() {
  std::unique_lock lock(mutex_);
  bool store_ok = true;
  while (!stopping_) {
    claim_cv_.wait_for(lock, options_.poll_interval, [this] { return stopping_ || wake_; });
    if (stopping_) break;
    wake_ = false;
    if (held_ >= options_.batch) continue;  // a worker wakes us when the backlog halves
    const std::size_t room = options_.batch - held_;
    lock.unlock();
    const std::int64_t now = clock_.unix_now();
    auto claimed = queue_.claim(options_.owner, now, options_.lease.count(), room);
    if (!claimed) {
      store_errors_.fetch_add(1);
      if (store_ok) spdlog::warn("ssf push: claim: {}", claimed.error().message);
      store_ok = false;
      lock.lock();
      continue;
    }
    store_ok = true;
    lock.lock();
    more_ = claimed->size() == room;
    if (!claimed->empty()) hold(std::move(*claimed), now);
  }
}

void PushDeliverer::hold(std::vector<PushItem> items, std::int64_t now) {
  for (auto& item : items) {
    auto& stream = streams_[item.stream_id];
    auto at = std::lower_bound(stream.items.begin(), stream.items.end(), item.seq,
                               [](const Held& h, std::int64_t seq) { return h.item.seq < seq; });
    const std::int64_t lease_end = now + options_.lease.count();
    if (at != stream.items.end() && at->item.seq == item.seq) {
      at->lease_end = lease_end;  // claimed again after its lease ran out while it waited
      continue;
    }
    stream.items.insert(at, Held{std::move(item), lease_end});
    ++held_;
  }
  work_cv_.notify_all();
}

void PushDeliverer::work_loop(HttpClient& client, std::uint64_t seed) {
  std::minstd_rand jitter(static_cast<std::minstd_rand::result_type>(seed));
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const auto timeout_s = std::chrono::ceil<std::chrono::seconds>(options_.timeout).count();
  std::unique_lock lock(mutex_);
  for (;;) {
    auto ready = streams_.end();
    work_cv_.wait(lock, [&] {
      if (stopping_) return true;
      ready = next_ready();
      return ready != streams_.end();
    });
    if (stopping_) return;
    ready->second.busy = true;
    last_served_ = ready->first;
    const std::string stream_id = ready->first;
    const Held held = ready->second.items.front();
    lock.unlock();

    // Sending an item whose lease may run out mid-request could let another replica send it
    // too, out of order; it is left to be claimed again.
    bool stream_goes_on = clock_.unix_now() + timeout_s < held.lease_end;
    std::int64_t retry_at = 0;
    std::string why;
    if (!stream_goes_on) {
      lease_expired_.fetch_add(1);
    } else {
      const PushVerdict verdict = send(client, held.item);
      lock.lock();
      const bool cancelled = stopping_;
      lock.unlock();
      // An aborted request is not a failure of the receiver's; a delivery that made it is kept.
      if (cancelled && verdict.kind == PushVerdict::Kind::kRetry) return;
      if (verdict.kind == PushVerdict::Kind::kRetry) {
        retry_at = next_attempt_at(clock_.unix_now(), held.item.attempts, options_, unit(jitter));
        why = "not sent: seq " + std::to_string(held.item.seq) + " of the stream failed first";
      }
      stream_goes_on =
          record(held.item, verdict, retry_at) && verdict.kind != PushVerdict::Kind::kRetry;
    }

    lock.lock();
    auto it = streams_.find(stream_id);
    auto& stream = it->second;
    stream.items.erase(stream.items.begin());
    --held_;
    std::vector<Held> rest;
    if (!stream_goes_on) {
      rest = std::move(stream.items);
      stream.items.clear();
      held_ -= rest.size();
    }
    stream.busy = false;
    // A stream emptied by a delivery may have its next item due now (a queue may hand out only
    // heads); a backlog that filled the batch may have more once half of it is done.
    const bool next_may_be_due = stream.items.empty() && stream_goes_on;
    if (stream.items.empty()) streams_.erase(it);
    if (next_may_be_due || (more_ && held_ <= options_.batch / 2)) {
      more_ = false;
      wake_ = true;
      claim_cv_.notify_one();
    }
    if (retry_at != 0 && !rest.empty()) {
      lock.unlock();
      for (const auto& later : rest) {
        if (auto s = queue_.failed(later.item, retry_at, why); !s) store_errors_.fetch_add(1);
      }
      lock.lock();
    }
  }
}

std::map<std::string, PushDeliverer::Stream, std::less<>>::iterator PushDeliverer::next_ready() {
  const auto ready = [](const auto& s) { return !s.second.busy && !s.second.items.empty(); };
  const auto after = streams_.upper_bound(last_served_);
  if (auto it = std::find_if(after, streams_.end(), ready); it != streams_.end()) return it;
  const auto it = std::find_if(streams_.begin(), after, ready);
  return it != after ? it : streams_.end();
}

PushVerdict PushDeliverer::send(HttpClient& client, const PushItem& item) {
  auto endpoint = parse_endpoint(item.endpoint_url);
  if (!endpoint) return {PushVerdict::Kind::kRetry, endpoint.error().message};
  auto response =
      client.post(*endpoint, {kSetMediaType, "application/json", item.authorization, item.set_jwt});
  if (!response) return {PushVerdict::Kind::kRetry, response.error().message};
  return classify_response(*response);
}

bool PushDeliverer::record(const PushItem& item, const PushVerdict& verdict,
                           std::int64_t retry_at) {
  Status status = ok();
  switch (verdict.kind) {
    case PushVerdict::Kind::kDelivered:
      delivered_.fetch_add(1);
      status = queue_.delivered(item, clock_.unix_now());
      break;
    case PushVerdict::Kind::kRefused:
      refused_.fetch_add(1);
      spdlog::warn("ssf push: stream {} seq {}: the receiver refused the SET for good: {}",
                   item.stream_id, item.seq, verdict.detail);
      status = queue_.delivered(item, clock_.unix_now());
      break;
    case PushVerdict::Kind::kRetry:
      failed_.fetch_add(1);
      // A receiver that stays down fails every attempt: the first and then every tenth say so.
      spdlog::log(item.attempts % 10 == 0 ? spdlog::level::warn : spdlog::level::debug,
                  "ssf push: stream {} seq {} attempt {} failed, next at {}: {}", item.stream_id,
                  item.seq, item.attempts + 1, retry_at, verdict.detail);
      status = queue_.failed(item, retry_at, verdict.detail);
      break;
  }
  if (!status) {
    store_errors_.fetch_add(1);
    spdlog::warn("ssf push: stream {} seq {}: recording the outcome: {}", item.stream_id, item.seq,
                 status.error().message);
    return false;
  }
  return true;
}

}  // namespace warden::issuer::ssf
