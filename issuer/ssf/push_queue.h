#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "platform/base/error.h"

namespace warden::issuer::ssf {

/// One SET due for push delivery to one stream (RFC 8935).
struct PushItem {
  std::string stream_id;
  std::int64_t seq = 0;        ///< the event's outbox sequence number
  std::string endpoint_url;    ///< the stream's delivery.endpoint_url
  std::string authorization;   ///< the stream's delivery.authorization_header ("" = none)
  std::string set_jwt;         ///< the signed SET (compact JWS, typ secevent+jwt)
  std::uint32_t attempts = 0;  ///< failed attempts so far
};

/// The outbox as the push worker sees it (issuer/ssf implements it over the Store).
class PushQueue {
 public:
  virtual ~PushQueue() = default;
  /// Leases up to `max` due push deliveries (next attempt <= now, no live lease) to `owner`
  /// until now + lease_s. Replicas sharing PostgreSQL never hold the same item at once.
  virtual Result<std::vector<PushItem>> claim(std::string_view owner, std::int64_t now,
                                              std::int64_t lease_s, std::size_t max) = 0;
  virtual Status delivered(const PushItem& item, std::int64_t now) = 0;
  virtual Status failed(const PushItem& item, std::int64_t next_attempt_at,
                        std::string_view error) = 0;
};

}  // namespace warden::issuer::ssf
