#include "agent/posture/container_log.h"

#include <utility>

#include "attest/pcr_values.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/openssl.h"

namespace warden::agent::posture {

namespace cel = attest::cel;

namespace {

/// Replays `records` from zero; the value of `pcr` per bank.
Result<std::map<TpmAlg, Bytes>> replay_from_zero(const std::vector<cel::Record>& records,
                                                 const std::vector<TpmAlg>& banks, unsigned pcr) {
  attest::PcrValues start;
  for (TpmAlg alg : banks) start.init_bank(alg);
  auto replayed = cel::replay(records, start, {.pcr = pcr});
  if (!replayed) return fail(std::move(replayed).error());
  if (!replayed->problems.empty()) {
    return fail(ErrorCode::kReplayMismatch, "container log: " + replayed->problems.front());
  }
  std::map<TpmAlg, Bytes> out;
  for (TpmAlg alg : banks) out[alg] = *replayed->pcrs.get(alg, pcr);
  return out;
}

}  // namespace

Result<std::unique_ptr<ContainerEventLog>> ContainerEventLog::open(ContainerLogOptions options,
                                                                   PcrExtender& extender) {
  if (options.pcr >= kPcrCount) {
    return fail(ErrorCode::kInvalidArgument,
                "container log: expected a PCR index 0..23, found " + std::to_string(options.pcr));
  }
  if ((options.pcr == 16 || options.pcr == 23) && !options.allow_resettable_pcr) {
    return fail(ErrorCode::kInvalidArgument,
                "container log: PCR " + std::to_string(options.pcr) +
                    " can be reset from the OS (expected a non-resettable PCR, or "
                    "tpm.allow_resettable_pcr = true)");
  }
  if (options.banks.empty()) {
    return fail(ErrorCode::kInvalidArgument, "container log: expected at least one PCR bank");
  }
  std::unique_ptr<ContainerEventLog> log(new ContainerEventLog(std::move(options), extender));
  const auto& opts = log->options_;

  std::map<TpmAlg, Bytes> current;
  for (TpmAlg alg : opts.banks) {
    auto value = extender.read(opts.pcr, alg);
    if (!value) return fail(value.error().context("container log"));
    current[alg] = std::move(*value);
  }

  std::error_code ec;
  if (std::filesystem::exists(opts.path, ec)) {
    auto bytes = read_file(opts.path, 4u << 20);
    if (!bytes) return fail(bytes.error().context("container log"));
    auto records = cel::decode(*bytes);
    if (records) {
      auto replayed = replay_from_zero(*records, opts.banks, opts.pcr);
      if (replayed && *replayed == current) {
        for (TpmAlg alg : opts.banks) log->start_[alg] = Bytes(hash_size(alg), 0);
        log->set_expected(*replayed);
        log->records_ = std::move(*records);
        return log;
      }
    }
  }
  // A new boot (or a log that does not belong to this PCR): start over from the current value.
  log->set_expected(current);
  log->start_ = std::move(current);
  WARDEN_TRY_STATUS(write_file_atomic(opts.path, cel::encode({}), 0600));
  return log;
}

void ContainerEventLog::set_expected(const std::map<TpmAlg, Bytes>& values) {
  expected_ = {};
  for (const auto& [alg, value] : values) {
    expected_.init_bank(alg);
    (void)expected_.set(alg, options_.pcr, value);
  }
}

Result<cel::Record> ContainerEventLog::append(const cel::ContainerContent& content) {
  std::lock_guard lock(mutex_);
  auto record = cel::make_record(records_.size(), content, options_.banks, options_.pcr);
  if (!record) return fail(record.error().context("container log"));
  for (const auto& [alg, digest] : record->digests) {
    auto extended = extender_->extend(options_.pcr, alg, digest);
    if (!extended) return fail(extended.error().context("container log"));
  }
  records_.push_back(*record);
  for (const auto& [alg, digest] : record->digests) {
    if (expected_.has_bank(alg)) (void)expected_.extend(alg, options_.pcr, digest);
  }
  auto written = write_file_atomic(options_.path, cel::encode(records_), 0600);
  if (!written) {
    return fail(written.error().context("container log: PCR " + std::to_string(options_.pcr) +
                                        " extended but record " + std::to_string(record->recnum) +
                                        " not written"));
  }
  return record;
}

std::map<TpmAlg, Bytes> ContainerEventLog::start_value() const {
  std::lock_guard lock(mutex_);
  return start_;
}

std::map<TpmAlg, std::string> ContainerEventLog::expected_value() const {
  std::lock_guard lock(mutex_);
  std::map<TpmAlg, std::string> out;
  for (TpmAlg alg : expected_.banks()) out[alg] = hex_encode(*expected_.get(alg, options_.pcr));
  return out;
}

std::vector<cel::Record> ContainerEventLog::records() const {
  std::lock_guard lock(mutex_);
  return records_;
}

Bytes ContainerEventLog::encoded() const {
  std::lock_guard lock(mutex_);
  return cel::encode(records_);
}

std::optional<cel::ContainerContent> ContainerEventLog::running_container(
    std::string_view id) const {
  std::lock_guard lock(mutex_);
  for (auto it = records_.rbegin(); it != records_.rend(); ++it) {
    if (it->content.container_id != id) continue;
    if (it->content.event != cel::ContainerEvent::kStart) return std::nullopt;
    return it->content;
  }
  return std::nullopt;
}

std::map<std::string, cel::ContainerContent> ContainerEventLog::running() const {
  std::lock_guard lock(mutex_);
  std::map<std::string, cel::ContainerContent> out;
  for (const auto& record : records_) {
    if (record.content.event == cel::ContainerEvent::kStart) {
      out[record.content.container_id] = record.content;
    } else {
      out.erase(record.content.container_id);
    }
  }
  return out;
}

}  // namespace warden::agent::posture
