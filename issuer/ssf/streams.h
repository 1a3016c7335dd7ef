#pragma once
// The Shared Signals transmitter (OpenID SSF 1.0), free of HTTP: its configuration document,
// the stream management of authenticated receivers (each sees only its own streams), the
// verification event, poll delivery (RFC 8936), and the outbox as the push worker's PushQueue
// (RFC 8935 delivery itself is issuer/ssf/push.h). SETs are built when they are sent, from the
// stored event, with the stream's aud and the issuer's current signing key.

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "attest/token/signer.h"
#include "issuer/ssf/push_queue.h"
#include "issuer/store/store.h"
#include "platform/base/clock.h"

namespace warden::issuer::ssf {

inline constexpr std::string_view kPushMethod = "urn:ietf:rfc:8935";
inline constexpr std::string_view kPollMethod = "urn:ietf:rfc:8936";

class Transmitter final : public PushQueue {
 public:
  struct Options {
    Store* store = nullptr;
    const Clock* clock = nullptr;
    std::function<std::string()> new_id;  ///< a fresh random stream id (thread-safe)
    /// The issuer's current signer (tokens::TokenIssuer::signer).
    std::function<Result<std::shared_ptr<token::Signer>>()> signer;
    std::string iss;         ///< the SETs' iss (the tokens' iss)
    std::string issuer_url;  ///< base of the advertised endpoints ("" = relative)
    bool allow_http_loopback = false;
    std::size_t max_streams_per_receiver = 16;
    std::int64_t retention_s = 7 * 86400;
    /// Called after a transaction that wrote events commits (the push worker's notify).
    std::function<void()> on_events_committed;
  };
  static constexpr std::size_t kMaxPollEvents = 100;

  explicit Transmitter(Options options);

  /// GET /.well-known/ssf-configuration.
  [[nodiscard]] std::string configuration_json() const;

  // Stream management: `receiver` is the authenticated caller; another receiver's stream is
  // kNotFound. Bodies are JSON text (the caller caps their size); answers are JSON text.
  Result<std::string> create_stream(std::string_view receiver, std::string_view body);
  /// One stream's configuration, or (no id) a JSON array of all of the receiver's.
  Result<std::string> read_streams(std::string_view receiver,
                                   const std::optional<std::string>& stream_id);
  /// PATCH (replace = false: the members given) or PUT (replace = true: the whole config).
  Result<std::string> update_stream(std::string_view receiver, std::string_view body, bool replace);
  Status delete_stream(std::string_view receiver, std::string_view stream_id);
  Result<std::string> read_status(std::string_view receiver, std::string_view stream_id);
  Result<std::string> update_status(std::string_view receiver, std::string_view body);
  /// POST /ssf/verify: queues a verification event on the stream.
  Status verify(std::string_view receiver, std::string_view body);
  /// RFC 8936 poll: applies acks and setErrs, answers {"sets": {...}, "moreAvailable": b}.
  Result<std::string> poll(std::string_view receiver, std::string_view stream_id,
                           std::string_view body);

  /// Drops deliveries and events older than the retention.
  Status housekeeping();
  void set_on_events_committed(std::function<void()> hook);
  void events_committed();

  // PushQueue: the store's outbox, SETs signed at claim time.
  Result<std::vector<PushItem>> claim(std::string_view owner, std::int64_t now,
                                      std::int64_t lease_s, std::size_t max) override;
  Status delivered(const PushItem& item, std::int64_t now) override;
  Status failed(const PushItem& item, std::int64_t next_attempt_at,
                std::string_view error) override;

  /// Push endpoint URLs: https, or http to a loopback host with allow_http_loopback.
  static Status check_push_url(std::string_view url, bool allow_http_loopback);

 private:
  Result<SsfStream> own_stream(std::string_view receiver, std::string_view stream_id);
  std::string stream_json(const SsfStream& s) const;
  std::string endpoint(std::string_view path) const {
    return options_.issuer_url + std::string(path);
  }
  Result<std::string> sign(const SsfDelivery& d);

  Options options_;
  std::mutex mu_;  // guards options_.on_events_committed
};

}  // namespace warden::issuer::ssf
