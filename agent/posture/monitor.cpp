#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "agent/posture/container_source.h"
#include "agent/posture/ima_source.h"
#include "agent/posture/own_writes.h"
#include "agent/posture/policy.h"
#include "agent/posture/posture.h"
#include "agent/posture/source.h"
#include "agent/posture/state_dir_source.h"
#include "agent/posture/tpm_source.h"
#include "agent/posture/watched_files.h"
#include "platform/base/log.h"
#include "platform/os/event_loop.h"
#include "platform/os/inotify.h"
#include "platform/os/securityfs.h"

namespace warden::agent::posture {

std::string_view to_string(Source source) {
  switch (source) {
    case Source::kContainer:
      return "container";
    case Source::kIma:
      return "ima";
    case Source::kPcr:
      return "pcr";
    case Source::kResetCount:
      return "reset_count";
    case Source::kConfig:
      return "config";
    case Source::kPolicy:
      return "policy";
    case Source::kStateFile:
      return "state_file";
    case Source::kStatusList:
      return "status_list";
    case Source::kTpm:
      return "tpm";
  }
  return "unknown";
}

std::string_view to_string(Action action) {
  switch (action) {
    case Action::kRevokeWorkload:
      return "revoke_workload";
    case Action::kReattest:
      return "reattest";
    case Action::kRevokeAll:
      return "revoke_all";
    case Action::kNone:
      return "none";
  }
  return "unknown";
}

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

/// DirWatcher on the monitor's inotify instance.
class InotifyWatcher final : public DirWatcher {
 public:
  explicit InotifyWatcher(os::Inotify& inotify) : inotify_(inotify) {}
  Result<int> watch(const fs::path& dir, os::WatchKind kind) override {
    return inotify_.add(dir, kind);
  }

 private:
  os::Inotify& inotify_;
};

/// The monitor thread: one os::EventLoop over the inotify descriptor, the poll timers and a
/// wake-up; each source turns what it sees into Observations, classified here by kPolicy.
class MonitorImpl final : public Monitor, public Observer {
 public:
  MonitorImpl(MonitorOptions options, Callback on_change)
      : opts_(std::move(options)), on_change_(std::move(on_change)) {}
  ~MonitorImpl() override;
  MonitorImpl(const MonitorImpl&) = delete;
  MonitorImpl& operator=(const MonitorImpl&) = delete;
  MonitorImpl(MonitorImpl&&) = delete;
  MonitorImpl& operator=(MonitorImpl&&) = delete;

  Status init();
  void launch() {
    thread_ = std::thread([this] { run(); });
  }

  void expect_state_write(const fs::path& path) override { own_writes_.expect(path); }
  void rebaseline() override;
  [[nodiscard]] MonitorStats stats() const override { return counters_.snapshot(); }

 private:
  void run();
  void on_fs_event(const os::FsEvent& event);
  void take_reference();
  void observe(Observation observation) override;
  void emit(Change change);

  MonitorOptions opts_;
  Callback on_change_;
  Counters counters_;
  NowFn now_ = [] { return Clock::now(); };
  OwnWrites own_writes_{now_};

  // Owned by the monitor thread after launch().
  std::optional<os::EventLoop> loop_;
  std::optional<os::Inotify> inotify_;
  std::optional<InotifyWatcher> watcher_;
  std::optional<SecurityfsImaCounter> ima_counter_;
  std::optional<TpmSource> tpm_;
  std::optional<ImaSource> ima_;
  std::optional<WatchedFiles> files_;
  std::optional<StateDirSource> state_;
  std::optional<ContainerSource> containers_;
  int pcr_timer_ = -1;
  int ima_timer_ = -1;
  bool ima_on_pcr_timer_ = false;  ///< IMA polled on the TPM's timer (same interval)
  std::vector<Change> pending_;    ///< found by init(), emitted first by the thread

  std::mutex control_mutex_;  ///< guards stop_, rebaseline_requested_, rebaseline_done_
  std::condition_variable control_cv_;
  bool stop_ = false;
  std::uint64_t rebaseline_requested_ = 0;
  std::uint64_t rebaseline_done_ = 0;
  std::thread thread_;
  /// Set by the monitor thread as it starts: before, changes found by the initial scan are kept
  /// for it (thread_ itself is written by the starting thread while the new one may run).
  std::atomic<std::thread::id> monitor_id_{};
  [[nodiscard]] bool on_monitor_thread() const {
    return std::this_thread::get_id() == monitor_id_.load(std::memory_order_relaxed);
  }
};

MonitorImpl::~MonitorImpl() {
  {
    std::lock_guard lock(control_mutex_);
    stop_ = true;
  }
  control_cv_.notify_all();
  if (thread_.joinable()) {
    loop_->wake();
    thread_.join();
  }
}

Status MonitorImpl::init() {
  auto loop = os::EventLoop::create();
  if (!loop) return fail(std::move(loop).error().context("posture"));
  loop_.emplace(std::move(*loop));
  auto inotify = os::Inotify::create();
  if (!inotify) return fail(std::move(inotify).error().context("posture"));
  inotify_.emplace(std::move(*inotify));
  watcher_.emplace(*inotify_);
  if (auto added = loop_->add_readable(inotify_->fd()); !added) {
    return fail(std::move(added).error().context("posture"));
  }
  auto add_timer = [&](std::chrono::milliseconds interval, int& out) -> Status {
    auto id = loop_->add_timer(interval);
    if (!id) return fail(std::move(id).error().context("posture"));
    out = *id;
    return ok();
  };
  if (opts_.tpm != nullptr) {
    WARDEN_TRY_STATUS(add_timer(opts_.pcr_poll_interval, pcr_timer_));
    tpm_.emplace(*opts_.tpm, *this, counters_, now_, opts_.ima_pcr, opts_.container_log);
  }
  if (!opts_.securityfs_root.empty() && os::ima_available(opts_.securityfs_root)) {
    // Same interval as the TPM: one timer and one wakeup for both (a wakeup of this thread
    // costs about as much CPU as the IMA read itself).
    if (pcr_timer_ >= 0 && opts_.ima_poll_interval == opts_.pcr_poll_interval) {
      ima_on_pcr_timer_ = true;
    } else {
      WARDEN_TRY_STATUS(add_timer(opts_.ima_poll_interval, ima_timer_));
    }
    ima_counter_.emplace(opts_.securityfs_root);
    ima_.emplace(*ima_counter_, *this, counters_, now_);
  }  // else IMA is off on this kernel: nothing to poll

  files_.emplace(*watcher_, *this, now_);
  if (!opts_.config_file.empty()) {
    WARDEN_TRY_STATUS(files_->add(opts_.config_file, Trigger::kConfigChanged));
  }
  for (const auto& file : opts_.watched_files) {
    WARDEN_TRY_STATUS(files_->add(file, Trigger::kPolicyFileChanged));
  }
  if (!opts_.state_dir.empty()) {
    state_.emplace(opts_.state_dir, *watcher_, own_writes_, *this, counters_, now_);
    WARDEN_TRY_STATUS(state_->start());
  }

  if (tpm_) WARDEN_TRY_STATUS(tpm_->start());
  if (ima_) WARDEN_TRY_STATUS(ima_->start());
  files_->rebaseline();
  if (state_) state_->rebaseline();

  if (!opts_.cgroupfs_root.empty()) {
    ContainerSource::Options options{opts_.cgroupfs_root,    opts_.container_log,
                                     opts_.image_lookup,     opts_.max_cgroup_watches,
                                     opts_.max_cgroup_depth, opts_.containerd_state};
    containers_.emplace(std::move(options), *watcher_, own_writes_, *this, counters_, now_);
    WARDEN_TRY_STATUS(containers_->start());
  }
  return ok();
}

void MonitorImpl::run() {
  monitor_id_ = std::this_thread::get_id();
  for (auto& change : pending_) emit(std::move(change));
  pending_.clear();
  for (;;) {
    auto ready = loop_->wait();
    if (!ready) {
      spdlog::error("posture: {}; the monitor stops", ready.error().message);
      return;
    }
    for (const int id : *ready) {
      if (id == loop_->wake_id()) {
        std::unique_lock lock(control_mutex_);
        if (stop_) return;
        if (rebaseline_requested_ > rebaseline_done_) {
          const auto target = rebaseline_requested_;
          lock.unlock();
          take_reference();
          lock.lock();
          rebaseline_done_ = target;
          control_cv_.notify_all();
        }
      } else if (id == inotify_->fd()) {
        inotify_->drain([this](const os::FsEvent& event) {
          ++counters_.inotify_events;
          on_fs_event(event);
        });
      } else if (id == pcr_timer_) {
        tpm_->poll();
        if (ima_on_pcr_timer_) ima_->poll();
      } else if (id == ima_timer_) {
        ima_->poll();
      }
    }
  }
}

void MonitorImpl::on_fs_event(const os::FsEvent& event) {
  if (event.overflow) {
    ++counters_.overflows;
    if (containers_) containers_->rescan();
    files_->rescan();
    if (state_) state_->rescan();
    return;
  }
  // One directory may be watched for more than one source (the same id for each).
  if (containers_) containers_->on_event(event);
  files_->on_event(event);
  if (state_) state_->on_event(event);
}

void MonitorImpl::take_reference() {
  if (tpm_) tpm_->rebaseline();
  if (ima_) ima_->rebaseline();
  files_->rebaseline();
  if (state_) state_->rebaseline();
}

void MonitorImpl::rebaseline() {
  if (on_monitor_thread()) {
    take_reference();
    return;
  }
  std::unique_lock lock(control_mutex_);
  const auto target = ++rebaseline_requested_;
  loop_->wake();
  control_cv_.wait(lock, [&] { return stop_ || rebaseline_done_ >= target; });
}

void MonitorImpl::observe(Observation observation) {
  Change change = classify(std::move(observation));
  if (on_monitor_thread()) {
    emit(std::move(change));
  } else {
    pending_.push_back(std::move(change));
  }
}

void MonitorImpl::emit(Change change) {
  ++counters_.by_source[static_cast<std::size_t>(change.source)];
  ++counters_.by_action[static_cast<std::size_t>(change.action)];
  const auto latency =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - change.detected_at);
  log::structured(change.action == Action::kNone ? spdlog::level::info : spdlog::level::warn,
                  "posture change",
                  {{"WARDEN_POSTURE_SOURCE", std::string(to_string(change.source))},
                   {"WARDEN_POSTURE_SUBJECT", change.subject},
                   {"WARDEN_POSTURE_OLD", change.old_value},
                   {"WARDEN_POSTURE_NEW", change.new_value},
                   {"WARDEN_POSTURE_ACTION", std::string(to_string(change.action))},
                   {"WARDEN_POSTURE_WORKLOAD", change.workload.value_or("")},
                   {"WARDEN_POSTURE_LATENCY_US", std::to_string(latency.count())}});
  on_change_(change);
}

}  // namespace

Result<std::unique_ptr<Monitor>> Monitor::start(MonitorOptions options, Callback on_change) {
  if (!on_change) return fail(ErrorCode::kInvalidArgument, "posture: expected a callback");
  auto monitor = std::make_unique<MonitorImpl>(std::move(options), std::move(on_change));
  WARDEN_TRY_STATUS(monitor->init());
  monitor->launch();
  return std::unique_ptr<Monitor>(std::move(monitor));
}

}  // namespace warden::agent::posture
