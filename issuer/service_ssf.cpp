// Shared Signals in the service: revocations written with their events in one transaction, the
// transmitter's construction, and the admin API's receivers.
#include <spdlog/spdlog.h>

#include "issuer/service_impl.h"
#include "issuer/ssf/receivers.h"

namespace warden::issuer {

using EventsFn = std::function<std::vector<SsfEventDraft>(const std::vector<TokenRecord>&)>;

namespace {

// Counts the events the transaction wrote (the last attempt's, if the store retried).
EventsFn counting(EventsFn events, bool enabled, const std::shared_ptr<std::size_t>& count) {
  if (!enabled || !events) return {};
  return [events = std::move(events), count](const std::vector<TokenRecord>& revoked) {
    auto drafts = events(revoked);
    *count = drafts.size();
    return drafts;
  };
}

// The service's Random behind its lock, held only while bytes are drawn (not across a store
// write).
class LockedRandom final : public Random {
 public:
  LockedRandom(Random& random, std::mutex& mu) : random_(&random), mu_(&mu) {}
  void fill(std::span<std::uint8_t> out) override {
    std::lock_guard lock(*mu_);
    random_->fill(out);
  }

 private:
  Random* random_;
  std::mutex* mu_;
};

}  // namespace

void Service::init_ssf() {
  const IssuerConfig::Ssf& c = options_.config->ssf;
  if (!c.enabled) return;
  ssf::Transmitter::Options o;
  o.store = options_.store;
  o.clock = options_.clock;
  o.new_id = [this] { return random_id(); };
  o.signer = [this]() -> Result<std::shared_ptr<token::Signer>> {
    WARDEN_ASSIGN(signer, tokens_.signer());
    return std::shared_ptr<token::Signer>(std::move(signer));
  };
  o.iss = tokens_.issuer_name();
  o.issuer_url = options_.issuer_url;
  o.allow_http_loopback = c.allow_http_loopback;
  o.max_streams_per_receiver = c.max_streams_per_receiver;
  o.retention_s = c.retention_s;
  o.on_events_committed = options_.on_events_committed;
  ssf_ = std::make_unique<ssf::Transmitter>(std::move(o));
}

void Service::set_on_events_committed(std::function<void()> hook) {
  if (ssf_) ssf_->set_on_events_committed(std::move(hook));
}

Result<std::string> Service::authenticate_receiver(std::string_view authorization) {
  return ssf::authenticate_receiver(*options_.store, authorization);
}

Result<std::vector<TokenRecord>> Service::apply_change(DeviceChange change, EventsFn events) {
  auto count = std::make_shared<std::size_t>(0);
  change.events = counting(std::move(events), ssf_ != nullptr, count);
  WARDEN_ASSIGN(revoked, options_.store->apply_device_change(change));
  if (*count > 0) ssf_->events_committed();
  return revoked;
}

Result<std::vector<TokenRecord>> Service::record_attestation_change(
    std::string_view id, ByteSpan nonce, std::int64_t expiry, const AttestationUpdate& u,
    const AuditRecord& audit, DeviceChange change, EventsFn events) {
  auto count = std::make_shared<std::size_t>(0);
  change.events = counting(std::move(events), ssf_ != nullptr, count);
  WARDEN_ASSIGN(revoked,
                options_.store->record_attestation_change(id, nonce, expiry, u, audit, change));
  if (*count > 0) ssf_->events_committed();
  return revoked;
}

Result<std::string> Service::admin_add_ssf_receiver(std::string_view name, std::string_view actor) {
  LockedRandom random(*options_.random, random_mu_);
  WARDEN_ASSIGN(token, ssf::create_receiver(*options_.store, random, name, now()));
  audit_log_.write(
      audit::Event{now(), "", audit::Action::kSsfReceiver, audit::Decision::kOk, "", "",
                   audit::SsfReceiverSet{std::string(actor), std::string(name), "add"}});
  return token;
}

Result<std::vector<SsfReceiver>> Service::admin_list_ssf_receivers() {
  WARDEN_ASSIGN(receivers, options_.store->list_ssf_receivers());
  for (auto& r : receivers) r.token_hash.clear();  // not even the hash leaves the store
  return receivers;
}

Status Service::admin_delete_ssf_receiver(std::string_view name, std::string_view actor) {
  WARDEN_TRY_STATUS(options_.store->remove_ssf_receiver(name, now()));
  audit_log_.write(
      audit::Event{now(), "", audit::Action::kSsfReceiver, audit::Decision::kOk, "", "",
                   audit::SsfReceiverSet{std::string(actor), std::string(name), "delete"}});
  return ok();
}

}  // namespace warden::issuer
