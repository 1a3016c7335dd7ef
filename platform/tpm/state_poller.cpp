#include "platform/tpm/state_poller.h"

#include <map>
#include <optional>
#include <utility>

#include "platform/tpm/esys.h"
#include "platform/tpm/objects.h"

namespace warden::tpm {

using detail::EsysPtr;
using detail::tpm_error;

namespace {

/// The PCRs whose changes do not move pcrUpdateCounter (TPM_PT_PCR_NO_INCREMENT; the same in
/// every bank). A TPM that does not answer is taken to exempt every PCR, so nothing is skipped.
std::bitset<kPcrCount> no_increment_pcrs(ESYS_CONTEXT* ctx) {
  TPMS_CAPABILITY_DATA* data = nullptr;
  TPMI_YES_NO more = TPM2_NO;
  TSS2_RC rc =
      Esys_GetCapability(ctx, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCR_PROPERTIES,
                         TPM2_PT_PCR_NO_INCREMENT, 1, &more, &data);
  EsysPtr<TPMS_CAPABILITY_DATA> owned(data);
  std::bitset<kPcrCount> out;
  if (rc != TSS2_RC_SUCCESS) return out.set();
  const TPML_TAGGED_PCR_PROPERTY& list = data->data.pcrProperties;
  for (std::uint32_t i = 0; i < list.count && i < TPM2_MAX_PCR_PROPERTIES; ++i) {
    const auto& property = list.pcrProperty[i];
    if (property.tag != TPM2_PT_PCR_NO_INCREMENT) continue;
    for (std::size_t pcr = 0; pcr < kPcrCount && pcr / 8 < property.sizeofSelect; ++pcr) {
      if ((property.pcrSelect[pcr / 8] >> (pcr % 8)) & 1) out.set(pcr);
    }
  }
  return out;
}

/// The selected PCRs in `mask`, else (when none is) the first selected PCR: a PCR_Read of it
/// returns the counter.
PcrSelection always_read_of(const PcrSelection& selection, const std::bitset<kPcrCount>& mask) {
  PcrSelection out;
  for (const auto& bank : selection.banks) {
    if (auto pcrs = bank.pcrs & mask; pcrs.any()) out.banks.push_back(PcrBank{bank.alg, pcrs});
  }
  if (!out.banks.empty()) return out;
  for (const auto& bank : selection.banks) {
    for (std::size_t pcr = 0; pcr < kPcrCount; ++pcr) {
      if (!bank.pcrs.test(pcr)) continue;
      PcrBank first{bank.alg, {}};
      first.pcrs.set(pcr);
      out.banks.push_back(first);
      return out;
    }
  }
  return out;
}

PcrSelection minus(const PcrSelection& selection, const PcrSelection& taken) {
  PcrSelection out;
  for (const auto& bank : selection.banks) {
    std::bitset<kPcrCount> pcrs = bank.pcrs;
    for (const auto& t : taken.banks) {
      if (t.alg == bank.alg) pcrs &= ~t.pcrs;
    }
    if (pcrs.any()) out.banks.push_back(PcrBank{bank.alg, pcrs});
  }
  return out;
}

}  // namespace

bool tcti_allows_held_connection(const std::string& tcti) {
  const auto colon = tcti.find(':');
  std::string name = tcti.substr(0, colon);
  const std::string conf = colon == std::string::npos ? "" : tcti.substr(colon + 1);
  // tctildr also takes the library's file name ("libtss2-tcti-swtpm.so.0").
  if (name.rfind("libtss2-tcti-", 0) == 0) {
    name = name.substr(13);
    name = name.substr(0, name.find(".so"));
  }
  if (name == "swtpm" || name == "tabrmd") return true;
  return name == "device" && conf.rfind("/dev/tpmrm", 0) == 0;
}

struct StatePoller::State {
  std::shared_ptr<detail::Connection> connection;
  PcrSelection selection;
  // Known after the first successful read on a connection; forgotten on any error.
  std::optional<PcrSelection> always;
  PcrSelection rest;
  std::optional<PcrSnapshot> last;
  Stats stats;

  Result<PcrSnapshot> read_once(detail::Connection::Lease& lease);
};

Result<PcrSnapshot> StatePoller::State::read_once(detail::Connection::Lease& lease) {
  if (lease.opened()) ++stats.opens;
  ESYS_CONTEXT* ctx = lease.get();
  if (!always) {
    ++stats.commands;
    always = always_read_of(selection, no_increment_pcrs(ctx));
    rest = minus(selection, *always);
    last.reset();
  }
  ++stats.commands;
  auto clock = detail::read_clock(ctx);
  if (!clock) return fail(std::move(clock).error());
  if (selection.empty()) return PcrSnapshot{{}, *clock, 0};

  auto head = detail::read_pcrs_counted(ctx, *always);
  if (head) stats.commands += head->commands;
  if (!head) return fail(std::move(head).error());
  const bool unchanged = last && last->clock.reset_count == clock->reset_count &&
                         last->clock.restart_count == clock->restart_count &&
                         last->update_counter == head->update_counter;
  PcrSnapshot snapshot{{}, *clock, head->update_counter};
  if (unchanged) {
    // The last read, with the always-read PCRs fresh.
    snapshot.pcrs = last->pcrs;
    for (auto& value : snapshot.pcrs) {
      for (auto& fresh : head->values) {
        if (fresh.alg == value.alg && fresh.index == value.index) value.digest = fresh.digest;
      }
    }
  } else {
    auto read = detail::read_pcrs_counted(ctx, rest);
    if (read) stats.commands += read->commands;
    if (!read) return fail(std::move(read).error());
    ++stats.full_reads;
    std::map<std::pair<TpmAlg, unsigned>, Bytes> values;
    for (auto& value : read->values) values[{value.alg, value.index}] = std::move(value.digest);
    for (auto& value : head->values) values[{value.alg, value.index}] = std::move(value.digest);
    for (const auto& bank : selection.banks) {
      for (std::size_t pcr = 0; pcr < kPcrCount; ++pcr) {
        if (!bank.pcrs.test(pcr)) continue;
        const auto index = static_cast<unsigned>(pcr);
        auto it = values.find({bank.alg, index});
        if (it == values.end()) {
          return fail(ErrorCode::kTpm, "TPM2_PCR_Read: no value for " +
                                           std::string(hash_name(bank.alg)) + ":" +
                                           std::to_string(pcr));
        }
        snapshot.pcrs.push_back(PcrValue{bank.alg, index, it->second});
      }
    }
  }
  // The counter is the one read before `rest`: a change during the read shows as a new counter
  // next time.
  last = snapshot;
  return snapshot;
}

StatePoller::StatePoller(std::string tcti, PcrSelection selection)
    : StatePoller(Tpm(std::move(tcti)), std::move(selection)) {}

StatePoller::StatePoller(const Tpm& tpm, PcrSelection selection)
    : state_(std::make_unique<State>()) {
  state_->connection = tpm.connection_;
  state_->selection = std::move(selection);
}

StatePoller::~StatePoller() = default;
StatePoller::StatePoller(StatePoller&& other) noexcept = default;
StatePoller& StatePoller::operator=(StatePoller&& other) noexcept = default;

Result<PcrSnapshot> StatePoller::read() {
  auto lease = state_->connection->acquire();
  if (!lease) {
    state_->always.reset();
    state_->last.reset();
    return fail(std::move(lease).error());
  }
  auto snapshot = state_->read_once(*lease);
  if (!snapshot) {
    lease->discard();
    state_->always.reset();
    state_->last.reset();
    return snapshot;
  }
  ++state_->stats.reads;
  return snapshot;
}

StatePoller::Stats StatePoller::stats() const { return state_->stats; }

bool StatePoller::keeps_connection() const { return state_->connection->holds(); }

PcrSelection StatePoller::always_read() const { return state_->always.value_or(PcrSelection{}); }

}  // namespace warden::tpm
