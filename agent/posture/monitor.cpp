#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/timerfd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <set>
#include <thread>
#include <unistd.h>
#include <utility>

#include "agent/posture/container_log.h"
#include "agent/posture/posture.h"
#include "platform/base/encoding.h"
#include "platform/base/file.h"
#include "platform/base/log.h"
#include "platform/base/openssl.h"
#include "platform/os/workload_identity.h"

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
namespace cel = attest::cel;
using Clock = std::chrono::steady_clock;

constexpr auto kExpectLifetime = std::chrono::seconds(30);
constexpr auto kTpmRetryInterval = std::chrono::seconds(1);
constexpr std::uint32_t kCgroupMask =
    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ONLYDIR | IN_MASK_ADD;
constexpr std::uint32_t kFileMask =
    IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR | IN_MASK_ADD;
constexpr std::uint32_t kStateMask = kFileMask | IN_CREATE | IN_DELETE_SELF | IN_MOVE_SELF;
constexpr unsigned kStateDirDepth = 2;
constexpr const char* kAbsent = "absent";

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::string errno_text() { return std::strerror(errno); }

/// "absent", or the file's sha256 in hex, or "unreadable: <why>".
std::string file_state(const fs::path& path) {
  auto bytes = read_file(path);
  if (!bytes) {
    return bytes.error().code == ErrorCode::kNotFound ? kAbsent
                                                      : "unreadable: " + bytes.error().message;
  }
  return "sha256:" + hex_encode(ossl::sha256(*bytes));
}

/// write_file_atomic's temporary files: ".<name>.XXXXXX".
bool is_atomic_temp(std::string_view name) {
  if (name.size() < 9 || name.front() != '.') return false;
  const auto dot = name.rfind('.');
  return dot > 0 && name.size() - dot == 7;
}

std::string join(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "/" + std::string(name);
}

unsigned depth_of(const std::string& rel) {
  if (rel.empty()) return 0;
  unsigned n = 1;
  for (char c : rel) n += c == '/' ? 1 : 0;
  return n;
}

/// 7 for "sha256:7"; kPcrCount when the key has no index.
unsigned pcr_index(std::string_view key) {
  const auto colon = key.rfind(':');
  unsigned index = kPcrCount;
  if (colon == std::string_view::npos) return index;
  std::from_chars(key.data() + colon + 1, key.data() + key.size(), index);
  return index;
}

bool same_reading(const TpmProbe::Reading& a, const TpmProbe::Reading& b) {
  return a.reset_count == b.reset_count && a.restart_count == b.restart_count && a.pcrs == b.pcrs;
}

struct Scope {
  std::string id;
  std::string runtime;
};

/// The container a cgroup directory is the scope of; none for directories inside a container
/// (the container's own sub-cgroups) or unrelated to one.
std::optional<Scope> container_scope(const std::string& rel) {
  auto identity = os::parse_cgroup("0::/" + rel);
  if (identity.container_id.empty()) return std::nullopt;
  const auto slash = rel.rfind('/');
  if (slash != std::string::npos) {
    auto parent = os::parse_cgroup("0::/" + rel.substr(0, slash));
    if (parent.container_id == identity.container_id) return std::nullopt;
  }
  return Scope{identity.container_id, identity.container_runtime};
}

struct Watch {
  fs::path dir;
  bool cgroup = false;
  bool files = false;  ///< parent of watched config/policy files
  bool state = false;
  std::string rel;  ///< relative to the cgroup root (cgroup) or the state dir (state)
};

struct WatchedFile {
  Source source = Source::kPolicy;
  std::string reference;
  std::string reported;
};

struct Counters {
  std::array<std::atomic<std::uint64_t>, kSourceCount> by_source{};
  std::array<std::atomic<std::uint64_t>, kActionCount> by_action{};
  std::atomic<std::uint64_t> tpm_polls{0}, tpm_errors{0}, ima_polls{0}, inotify_events{0},
      overflows{0}, cgroup_watches{0}, cgroup_watch_limit_hits{0}, containers_running{0},
      container_log_appends{0}, container_log_errors{0}, suppressed_own_writes{0};
};

class MonitorImpl final : public Monitor {
 public:
  MonitorImpl(MonitorOptions options, Callback on_change)
      : opts_(std::move(options)), on_change_(std::move(on_change)) {}
  ~MonitorImpl() override;
  MonitorImpl(const MonitorImpl&) = delete;
  MonitorImpl& operator=(const MonitorImpl&) = delete;
  MonitorImpl(MonitorImpl&&) = delete;
  MonitorImpl& operator=(MonitorImpl&&) = delete;

  Status init();
  void launch();

  void expect_state_write(const fs::path& path) override;
  void rebaseline() override;
  [[nodiscard]] MonitorStats stats() const override;

 private:
  void run();
  void wake();
  Status add_timer(std::chrono::milliseconds interval, Fd& out);
  Status watch_epoll(int fd);
  Result<int> add_watch(const fs::path& dir, std::uint32_t mask);

  void read_inotify();
  void handle(const inotify_event& event, std::string_view name);
  void rescan();

  /// `rel` is relative to the cgroupfs root (on cgroup v1 it starts with the hierarchy).
  [[nodiscard]] fs::path cgroup_dir(const std::string& rel) const {
    return rel.empty() ? cgroup_root_ : cgroup_root_ / rel;
  }
  /// The path /proc/PID/cgroup shows (cgroup v1: without the hierarchy), recorded in the CEL.
  [[nodiscard]] std::string cel_path(const std::string& rel) const {
    if (cgroup_prefix_.empty()) return "/" + rel;
    return rel.size() > cgroup_prefix_.size() ? rel.substr(cgroup_prefix_.size()) : "/";
  }
  [[nodiscard]] std::string rel_of(const std::string& cel_cgroup_path) const {
    const std::string trimmed = cel_cgroup_path.empty() || cel_cgroup_path.front() != '/'
                                    ? cel_cgroup_path
                                    : cel_cgroup_path.substr(1);
    return cgroup_prefix_.empty() ? trimmed : join(cgroup_prefix_, trimmed);
  }
  void scan_cgroups(const std::string& rel, std::set<std::string>* seen);
  void cgroup_dir_added(const std::string& rel, std::set<std::string>* seen);
  void cgroup_dir_removed(const std::string& rel);
  void container_appeared(const std::string& rel, const Scope& scope);
  void container_gone(const std::string& rel);
  void measure(cel::ContainerContent content);

  void scan_state_dir(const std::string& rel, bool take_reference);
  void check_state_file(const std::string& rel);
  bool consume_expectation(const fs::path& path);
  void check_watched_file(const fs::path& path);

  void poll_tpm();
  void poll_ima();
  Result<std::uint64_t> read_ima_count() const;
  void take_reference();
  void reference_files();

  void report(Source source, Action action, std::string subject, std::string old_value,
              std::string new_value, Clock::time_point detected);
  void emit(Change change);
  /// True when `current` differs from `reference` and was not reported before (remembered in
  /// `reported[key]`); a value back at the reference forgets the report.
  static bool is_new(std::map<std::string, std::string>& reported, const std::string& key,
                     const std::string& reference, const std::string& current);

  MonitorOptions opts_;
  Callback on_change_;
  Counters counters_;

  // Owned by the monitor thread after launch().
  Fd epoll_, inotify_, wake_, pcr_timer_, ima_timer_;
  std::map<int, Watch> watches_;
  fs::path cgroup_root_;
  std::string cgroup_prefix_;  ///< cgroup v1: the one controller hierarchy watched
  std::map<std::string, std::string> id_by_rel_;
  std::map<std::string, std::set<std::string>> rels_by_id_;
  std::map<std::string, cel::ContainerContent> started_;
  std::map<fs::path, WatchedFile> files_;
  fs::path state_dir_;
  std::map<std::string, std::string> state_reference_;
  std::map<std::string, std::string> state_reported_;
  bool tpm_ok_ = true;
  Clock::time_point tpm_retry_at_;
  TpmProbe::Reading tpm_reference_;
  std::optional<TpmProbe::Reading> last_reading_;  ///< of the last poll that read the TPM
  std::map<std::string, std::string> tpm_reported_;
  fs::path ima_count_path_;
  bool ima_on_pcr_timer_ = false;  ///< IMA polled on the TPM's timer (same interval)
  std::uint64_t ima_reference_ = 0;
  std::map<std::string, std::string> ima_reported_;
  std::vector<Change> pending_;  ///< found by init(), emitted first by the thread
  bool limit_logged_ = false;

  std::mutex expect_mutex_;  ///< guards expected_
  std::map<fs::path, std::deque<Clock::time_point>> expected_;

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
    wake();
    thread_.join();
  }
}

void MonitorImpl::wake() {
  const std::uint64_t one = 1;
  // A full eventfd counter still wakes the thread, so a failed write needs no handling.
  [[maybe_unused]] auto n = ::write(wake_.get(), &one, sizeof one);
}

Status MonitorImpl::watch_epoll(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    return fail(ErrorCode::kIo, "posture: epoll_ctl: " + errno_text());
  }
  return ok();
}

Status MonitorImpl::add_timer(std::chrono::milliseconds interval, Fd& out) {
  if (interval.count() <= 0) {
    return fail(ErrorCode::kInvalidArgument, "posture: expected a positive poll interval, found " +
                                                 std::to_string(interval.count()) + " ms");
  }
  out = Fd(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (out.get() < 0) return fail(ErrorCode::kIo, "posture: timerfd_create: " + errno_text());
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(interval.count() / 1000);
  spec.it_interval.tv_nsec = static_cast<long>((interval.count() % 1000) * 1000000);
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(out.get(), 0, &spec, nullptr) != 0) {
    return fail(ErrorCode::kIo, "posture: timerfd_settime: " + errno_text());
  }
  return watch_epoll(out.get());
}

Result<int> MonitorImpl::add_watch(const fs::path& dir, std::uint32_t mask) {
  const int wd = ::inotify_add_watch(inotify_.get(), dir.c_str(), mask);
  if (wd < 0) {
    return fail(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
                "posture: inotify_add_watch " + dir.string() + ": " + errno_text());
  }
  auto& watch = watches_[wd];
  watch.dir = dir;
  return wd;
}

Status MonitorImpl::init() {
  epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
  inotify_ = Fd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  wake_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (epoll_.get() < 0 || inotify_.get() < 0 || wake_.get() < 0) {
    return fail(ErrorCode::kIo, "posture: epoll/inotify/eventfd: " + errno_text());
  }
  WARDEN_TRY_STATUS(watch_epoll(inotify_.get()));
  WARDEN_TRY_STATUS(watch_epoll(wake_.get()));
  if (opts_.tpm != nullptr) WARDEN_TRY_STATUS(add_timer(opts_.pcr_poll_interval, pcr_timer_));

  if (!opts_.securityfs_root.empty()) {
    ima_count_path_ = opts_.securityfs_root / "ima" / "runtime_measurements_count";
    std::error_code ec;
    if (fs::exists(ima_count_path_, ec)) {
      // Same interval as the TPM: one timer and one wakeup for both (a wakeup of this thread
      // costs about as much CPU as the IMA read itself).
      if (pcr_timer_.get() >= 0 && opts_.ima_poll_interval == opts_.pcr_poll_interval) {
        ima_on_pcr_timer_ = true;
      } else {
        WARDEN_TRY_STATUS(add_timer(opts_.ima_poll_interval, ima_timer_));
      }
    } else {
      ima_count_path_.clear();  // IMA is off on this kernel: nothing to poll
    }
  }

  auto add_file = [&](const fs::path& path, Source source) -> Status {
    const fs::path file = path.lexically_normal();
    auto wd = add_watch(file.parent_path(), kFileMask);
    if (!wd) return fail(std::move(wd).error());
    watches_[*wd].files = true;
    files_[file].source = source;
    return ok();
  };
  if (!opts_.config_file.empty()) WARDEN_TRY_STATUS(add_file(opts_.config_file, Source::kConfig));
  for (const auto& file : opts_.watched_files) WARDEN_TRY_STATUS(add_file(file, Source::kPolicy));

  if (!opts_.state_dir.empty()) {
    state_dir_ = opts_.state_dir.lexically_normal();
    auto wd = add_watch(state_dir_, kStateMask);
    if (!wd) return fail(std::move(wd).error());
    watches_[*wd].state = true;
  }

  if (opts_.tpm != nullptr) {
    auto reading = opts_.tpm->read();
    if (!reading) return fail(reading.error().context("posture: TPM baseline"));
    tpm_reference_ = std::move(*reading);
  }
  if (!ima_count_path_.empty()) {
    auto count = read_ima_count();
    if (!count) return fail(std::move(count).error());
    ima_reference_ = *count;
  }
  reference_files();

  if (!opts_.cgroupfs_root.empty()) {
    cgroup_root_ = opts_.cgroupfs_root.lexically_normal();
    std::error_code ec;
    // cgroup v1: every controller hierarchy repeats the container directories; watch one.
    if (!fs::exists(cgroup_root_ / "cgroup.controllers", ec)) {
      for (const char* hierarchy : {"memory", "pids", "cpu,cpuacct", "systemd", "unified"}) {
        if (fs::is_directory(cgroup_root_ / hierarchy, ec)) {
          cgroup_prefix_ = hierarchy;
          break;
        }
      }
    }
    auto wd = add_watch(cgroup_dir(cgroup_prefix_), kCgroupMask);
    if (!wd) return fail(std::move(wd).error());
    watches_[*wd].cgroup = true;
    watches_[*wd].rel = cgroup_prefix_;
    counters_.cgroup_watches = 1;
    std::set<std::string> seen;
    scan_cgroups(cgroup_prefix_, &seen);
    // Containers the log lists as running that are gone stopped while the agent was down.
    if (opts_.container_log != nullptr) {
      for (const auto& [id, content] : opts_.container_log->running()) {
        if (rels_by_id_.count(id) != 0) continue;
        const std::string rel = rel_of(content.cgroup_path);
        started_[id] = content;
        id_by_rel_[rel] = id;
        rels_by_id_[id].insert(rel);
        container_gone(rel);
      }
    }
  }
  return ok();
}

void MonitorImpl::launch() {
  thread_ = std::thread([this] { run(); });
}

void MonitorImpl::run() {
  monitor_id_ = std::this_thread::get_id();
  for (auto& change : pending_) emit(std::move(change));
  pending_.clear();
  std::array<epoll_event, 8> events{};
  for (;;) {
    const int n = ::epoll_wait(epoll_.get(), events.data(), static_cast<int>(events.size()), -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      spdlog::error("posture: epoll_wait failed: {}; the monitor stops", errno_text());
      return;
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[static_cast<std::size_t>(i)].data.fd;
      if (fd == wake_.get()) {
        std::uint64_t value = 0;
        [[maybe_unused]] auto r = ::read(fd, &value, sizeof value);
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
      } else if (fd == inotify_.get()) {
        read_inotify();
      } else if (fd == pcr_timer_.get() || fd == ima_timer_.get()) {
        std::uint64_t expirations = 0;
        [[maybe_unused]] auto r = ::read(fd, &expirations, sizeof expirations);
        if (fd == pcr_timer_.get()) {
          poll_tpm();
          if (ima_on_pcr_timer_) poll_ima();
        } else {
          poll_ima();
        }
      }
    }
  }
}

// ---- control from other threads -------------------------------------------------------------

void MonitorImpl::expect_state_write(const fs::path& path) {
  std::lock_guard lock(expect_mutex_);
  expected_[path.lexically_normal()].push_back(Clock::now() + kExpectLifetime);
}

bool MonitorImpl::consume_expectation(const fs::path& path) {
  std::lock_guard lock(expect_mutex_);
  auto it = expected_.find(path);
  if (it == expected_.end()) return false;
  const auto now = Clock::now();
  auto& deadlines = it->second;
  while (!deadlines.empty() && deadlines.front() < now) deadlines.pop_front();
  const bool found = !deadlines.empty();
  if (found) deadlines.pop_front();
  if (deadlines.empty()) expected_.erase(it);
  return found;
}

void MonitorImpl::rebaseline() {
  if (on_monitor_thread()) {
    take_reference();
    return;
  }
  std::unique_lock lock(control_mutex_);
  const auto target = ++rebaseline_requested_;
  wake();
  control_cv_.wait(lock, [&] { return stop_ || rebaseline_done_ >= target; });
}

MonitorStats MonitorImpl::stats() const {
  MonitorStats s;
  for (std::size_t i = 0; i < kSourceCount; ++i) s.changes_by_source[i] = counters_.by_source[i];
  for (std::size_t i = 0; i < kActionCount; ++i) s.changes_by_action[i] = counters_.by_action[i];
  s.tpm_polls = counters_.tpm_polls;
  s.tpm_errors = counters_.tpm_errors;
  s.ima_polls = counters_.ima_polls;
  s.inotify_events = counters_.inotify_events;
  s.overflows = counters_.overflows;
  s.cgroup_watches = counters_.cgroup_watches;
  s.cgroup_watch_limit_hits = counters_.cgroup_watch_limit_hits;
  s.containers_running = counters_.containers_running;
  s.container_log_appends = counters_.container_log_appends;
  s.container_log_errors = counters_.container_log_errors;
  s.suppressed_own_writes = counters_.suppressed_own_writes;
  return s;
}

// ---- inotify ----------------------------------------------------------------------------------

void MonitorImpl::read_inotify() {
  alignas(inotify_event) std::array<char, 65536> buffer{};
  for (;;) {
    const ssize_t n = ::read(inotify_.get(), buffer.data(), buffer.size());
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return;  // EAGAIN: drained
    }
    std::size_t offset = 0;
    const auto size = static_cast<std::size_t>(n);
    while (offset + sizeof(inotify_event) <= size) {
      inotify_event event{};
      std::memcpy(&event, buffer.data() + offset, sizeof event);
      const char* name_start = buffer.data() + offset + sizeof event;
      std::string_view name(name_start, strnlen(name_start, event.len));
      offset += sizeof event + event.len;
      ++counters_.inotify_events;
      handle(event, name);
    }
  }
}

void MonitorImpl::handle(const inotify_event& event, std::string_view name) {
  if ((event.mask & IN_Q_OVERFLOW) != 0) {
    ++counters_.overflows;
    rescan();
    return;
  }
  auto it = watches_.find(event.wd);
  if (it == watches_.end()) return;
  if ((event.mask & IN_IGNORED) != 0) {
    if (it->second.cgroup) --counters_.cgroup_watches;
    watches_.erase(it);
    return;
  }
  const Watch watch = it->second;  // handlers may add watches (and rehash the map)
  const bool is_dir = (event.mask & IN_ISDIR) != 0;
  const bool added = (event.mask & (IN_CREATE | IN_MOVED_TO)) != 0;
  const bool removed = (event.mask & (IN_DELETE | IN_MOVED_FROM)) != 0;

  if (watch.state && (event.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) {
    report(Source::kStateFile, Action::kRevokeAll, state_dir_.string(), "present", kAbsent,
           Clock::now());
    return;
  }
  if (watch.cgroup && is_dir && !name.empty()) {
    const std::string rel = join(watch.rel, name);
    if (added) cgroup_dir_added(rel, nullptr);
    if (removed) cgroup_dir_removed(rel);
  }
  if (watch.files && !is_dir && !name.empty()) check_watched_file(watch.dir / std::string(name));
  if (watch.state && !name.empty() && !is_atomic_temp(name)) {
    const std::string rel = join(watch.rel, name);
    if (is_dir) {
      if (added && depth_of(rel) < kStateDirDepth) {
        if (auto wd = add_watch(state_dir_ / rel, kStateMask); wd) {
          watches_[*wd].state = true;
          watches_[*wd].rel = rel;
        }
        scan_state_dir(rel, false);
      }
    } else if ((event.mask & IN_CREATE) == 0) {
      // A file is checked when closed after writing, not when created (still empty).
      check_state_file(rel);
    }
  }
}

void MonitorImpl::rescan() {
  if (!opts_.cgroupfs_root.empty()) {
    std::set<std::string> seen;
    scan_cgroups(cgroup_prefix_, &seen);
    std::vector<std::string> gone;
    for (const auto& [rel, id] : id_by_rel_) {
      if (seen.count(rel) == 0) gone.push_back(rel);
    }
    for (const auto& rel : gone) container_gone(rel);
  }
  for (const auto& [path, file] : files_) check_watched_file(path);
  if (!state_dir_.empty()) {
    std::vector<std::string> known;
    for (const auto& [rel, digest] : state_reference_) known.push_back(rel);
    for (const auto& rel : known) check_state_file(rel);
    scan_state_dir("", false);
  }
}

// ---- containers -------------------------------------------------------------------------------

void MonitorImpl::scan_cgroups(const std::string& rel, std::set<std::string>* seen) {
  std::error_code ec;
  fs::directory_iterator it(cgroup_dir(rel), ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_directory(type_ec) || it->is_symlink(type_ec)) continue;
    cgroup_dir_added(join(rel, it->path().filename().string()), seen);
  }
}

void MonitorImpl::cgroup_dir_added(const std::string& rel, std::set<std::string>* seen) {
  if (auto scope = container_scope(rel)) {
    if (seen != nullptr) seen->insert(rel);
    container_appeared(rel, *scope);
    return;  // a container's own sub-cgroups are its business
  }
  if (depth_of(rel) > opts_.max_cgroup_depth) return;
  if (counters_.cgroup_watches >= opts_.max_cgroup_watches) {
    ++counters_.cgroup_watch_limit_hits;
    if (!limit_logged_) {
      limit_logged_ = true;
      spdlog::warn(
          "posture: {} cgroup directories watched (posture.max_cgroup_watches); "
          "containers below {} are not seen",
          opts_.max_cgroup_watches, rel);
    }
    return;
  }
  auto wd = add_watch(cgroup_dir(rel), kCgroupMask);
  if (!wd) return;  // removed again before we got to it
  auto& watch = watches_[*wd];
  if (!watch.cgroup) ++counters_.cgroup_watches;
  watch.cgroup = true;
  watch.rel = rel;
  // Subdirectories created before the watch existed produced no event: list them.
  scan_cgroups(rel, seen);
}

void MonitorImpl::cgroup_dir_removed(const std::string& rel) {
  std::vector<std::string> gone;
  for (auto it = id_by_rel_.lower_bound(rel); it != id_by_rel_.end(); ++it) {
    if (it->first != rel && it->first.rfind(rel + "/", 0) != 0) break;
    gone.push_back(it->first);
  }
  for (const auto& r : gone) container_gone(r);
}

void MonitorImpl::container_appeared(const std::string& rel, const Scope& scope) {
  if (id_by_rel_.count(rel) != 0) return;
  const auto detected = Clock::now();
  id_by_rel_[rel] = scope.id;
  auto& rels = rels_by_id_[scope.id];
  rels.insert(rel);
  if (rels.size() > 1) return;  // the same container in another place (hybrid hierarchies)
  ++counters_.containers_running;
  cel::ContainerContent content{
      cel::ContainerEvent::kStart, scope.id, "", "", scope.runtime, cel_path(rel)};
  if (opts_.image_lookup) {
    if (auto image = opts_.image_lookup(scope.runtime, scope.id)) {
      content.image_ref = std::move(image->reference);
      content.image_digest = std::move(image->digest);
    }
  }
  started_[scope.id] = content;
  bool logged = false;
  if (opts_.container_log != nullptr) {
    logged = opts_.container_log->running().count(scope.id) != 0;
    if (!logged) measure(content);
  }
  if (logged && !on_monitor_thread()) return;  // already measured before an agent restart
  Change change{Source::kContainer, Action::kNone, scope.id, kAbsent, "running",
                scope.id,           scope.runtime, rel,      detected};
  if (on_monitor_thread()) {
    emit(std::move(change));
  } else {
    pending_.push_back(std::move(change));
  }
}

void MonitorImpl::container_gone(const std::string& rel) {
  auto it = id_by_rel_.find(rel);
  if (it == id_by_rel_.end()) return;
  const auto detected = Clock::now();
  const std::string id = it->second;
  id_by_rel_.erase(it);
  auto& rels = rels_by_id_[id];
  rels.erase(rel);
  if (!rels.empty()) return;
  rels_by_id_.erase(id);
  if (counters_.containers_running > 0) --counters_.containers_running;
  cel::ContainerContent content = started_[id];
  started_.erase(id);
  content.event = cel::ContainerEvent::kStop;
  if (content.container_id.empty()) content.container_id = id;
  Change change{Source::kContainer,
                Action::kRevokeWorkload,
                id,
                "running",
                "stopped",
                id,
                content.runtime,
                rel,
                detected};
  // Revocation must not wait for the disk and the TPM: report first, then measure. (A start is
  // measured first, so that anything done for the new container is covered by the next quote.)
  if (on_monitor_thread()) {
    emit(std::move(change));
  } else {
    pending_.push_back(std::move(change));
  }
  if (opts_.container_log != nullptr) measure(content);
}

void MonitorImpl::measure(cel::ContainerContent content) {
  expect_state_write(opts_.container_log->path());
  auto record = opts_.container_log->append(content);
  if (record) {
    ++counters_.container_log_appends;
    return;
  }
  consume_expectation(opts_.container_log->path().lexically_normal());
  ++counters_.container_log_errors;
  spdlog::error("posture: container {} not measured: {}", content.container_id,
                record.error().message);
}

// ---- files ------------------------------------------------------------------------------------

void MonitorImpl::scan_state_dir(const std::string& rel, bool take_reference) {
  std::error_code ec;
  fs::directory_iterator it(rel.empty() ? state_dir_ : state_dir_ / rel, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_atomic_temp(name)) continue;
    const std::string child = join(rel, name);
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      if (depth_of(child) < kStateDirDepth) {
        if (auto wd = add_watch(state_dir_ / child, kStateMask); wd) {
          watches_[*wd].state = true;
          watches_[*wd].rel = child;
        }
        scan_state_dir(child, take_reference);
      }
    } else if (take_reference) {
      state_reference_[child] = file_state(state_dir_ / child);
    } else {
      check_state_file(child);
    }
  }
}

void MonitorImpl::check_state_file(const std::string& rel) {
  const fs::path path = state_dir_ / rel;
  const std::string current = file_state(path);
  auto ref_it = state_reference_.find(rel);
  const std::string reference = ref_it == state_reference_.end() ? kAbsent : ref_it->second;
  if (consume_expectation(path)) {
    ++counters_.suppressed_own_writes;
    if (current == kAbsent) {
      state_reference_.erase(rel);
    } else {
      state_reference_[rel] = current;
    }
    state_reported_.erase(rel);
    return;
  }
  if (!is_new(state_reported_, rel, reference, current)) return;
  report(Source::kStateFile, Action::kRevokeAll, path.string(), reference, current, Clock::now());
}

void MonitorImpl::check_watched_file(const fs::path& path) {
  auto it = files_.find(path.lexically_normal());
  if (it == files_.end()) return;
  auto& file = it->second;
  const std::string current = file_state(path);
  if (current == file.reference) {
    file.reported.clear();
    return;
  }
  if (current == file.reported) return;
  file.reported = current;
  report(file.source, Action::kReattest, path.string(), file.reference, current, Clock::now());
}

// ---- polled sources ---------------------------------------------------------------------------

void MonitorImpl::poll_tpm() {
  const auto detected = Clock::now();
  // A lost TPM is retried once a second, not every poll: tpm2-tss logs every failed connect.
  if (!tpm_ok_ && detected < tpm_retry_at_) return;
  ++counters_.tpm_polls;
  auto reading = opts_.tpm->read();
  if (!reading) {
    ++counters_.tpm_errors;
    tpm_retry_at_ = Clock::now() + kTpmRetryInterval;
    if (tpm_ok_) {
      tpm_ok_ = false;
      report(Source::kTpm, Action::kRevokeAll, "tpm", "reachable",
             "unreachable: " + reading.error().message, detected);
    }
    return;
  }
  if (!tpm_ok_) {
    tpm_ok_ = true;
    report(Source::kTpm, Action::kReattest, "tpm", "unreachable", "reachable", detected);
  }
  // What is reported depends on the reading, the reference and the container log, and the last
  // two only move with the reading (an append extends the container PCR; take_reference() resets
  // last_reading_): a reading equal to the last one has nothing new.
  if (last_reading_ && same_reading(*last_reading_, *reading)) return;
  last_reading_ = *reading;
  const std::pair<const char*, std::pair<std::uint64_t, std::uint64_t>> counters[] = {
      {"resetCount", {tpm_reference_.reset_count, reading->reset_count}},
      {"restartCount", {tpm_reference_.restart_count, reading->restart_count}}};
  for (const auto& [name, values] : counters) {
    const auto reference = std::to_string(values.first);
    const auto current = std::to_string(values.second);
    if (is_new(tpm_reported_, name, reference, current)) {
      report(Source::kResetCount, Action::kRevokeAll, name, reference, current, detected);
    }
  }
  std::set<std::string> keys;
  for (const auto& [key, value] : tpm_reference_.pcrs) keys.insert(key);
  for (const auto& [key, value] : reading->pcrs) keys.insert(key);
  for (const auto& key : keys) {
    auto ref = tpm_reference_.pcrs.find(key);
    auto cur = reading->pcrs.find(key);
    const std::string reference = ref == tpm_reference_.pcrs.end() ? kAbsent : ref->second;
    const std::string current = cur == reading->pcrs.end() ? kAbsent : cur->second;
    const unsigned index = pcr_index(key);
    if (opts_.container_log != nullptr && index == opts_.container_log->pcr()) {
      // The container PCR moves with every container start and stop; it must always equal the
      // container log's replay. A value the log does not explain is tampering.
      const auto expected = opts_.container_log->expected_value();
      const auto bank = hash_from_name(key.substr(0, key.find(':')));
      const auto want = bank ? expected.find(*bank) : expected.end();
      if (want != expected.end() && cur != reading->pcrs.end() &&
          is_new(tpm_reported_, "container " + key, want->second, current)) {
        report(Source::kPcr, Action::kRevokeAll, "pcr " + key + " (container log)", want->second,
               current, detected);
      }
      continue;
    }
    if (is_new(tpm_reported_, "pcr " + key, reference, current)) {
      report(Source::kPcr, index == opts_.ima_pcr ? Action::kReattest : Action::kRevokeAll,
             "pcr " + key, reference, current, detected);
    }
  }
}

Result<std::uint64_t> MonitorImpl::read_ima_count() const {
  auto bytes = read_file(ima_count_path_, 64);
  if (!bytes) return fail(bytes.error().context("posture: IMA count"));
  const std::string owned = ::warden::to_string(ByteSpan(*bytes));
  std::string_view text = owned;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.remove_suffix(1);
  std::uint64_t count = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), count);
  if (ec != std::errc() || ptr != text.data() + text.size() || text.empty()) {
    return fail(ErrorCode::kMalformed, "posture: IMA count: expected a decimal number in " +
                                           ima_count_path_.string() + ", found \"" +
                                           std::string(text) + "\"");
  }
  return count;
}

void MonitorImpl::poll_ima() {
  ++counters_.ima_polls;
  const auto detected = Clock::now();
  auto count = read_ima_count();
  if (!count) {
    spdlog::debug("{}", count.error().message);
    return;
  }
  const auto reference = std::to_string(ima_reference_);
  const auto current = std::to_string(*count);
  if (is_new(ima_reported_, "count", reference, current)) {
    report(Source::kIma, Action::kReattest, "ima runtime_measurements_count", reference, current,
           detected);
  }
}

void MonitorImpl::take_reference() {
  if (opts_.tpm != nullptr) {
    last_reading_.reset();
    if (auto reading = opts_.tpm->read(); reading) {
      tpm_reference_ = std::move(*reading);
      tpm_ok_ = true;
    }
  }
  tpm_reported_.clear();
  if (!ima_count_path_.empty()) {
    if (auto count = read_ima_count(); count) ima_reference_ = *count;
  }
  ima_reported_.clear();
  reference_files();
}

void MonitorImpl::reference_files() {
  for (auto& [path, file] : files_) {
    file.reference = file_state(path);
    file.reported.clear();
  }
  if (!state_dir_.empty()) {
    state_reference_.clear();
    state_reported_.clear();
    scan_state_dir("", true);
  }
}

// ---- reporting --------------------------------------------------------------------------------

bool MonitorImpl::is_new(std::map<std::string, std::string>& reported, const std::string& key,
                         const std::string& reference, const std::string& current) {
  if (current == reference) {
    reported.erase(key);
    return false;
  }
  auto [it, inserted] = reported.try_emplace(key, current);
  if (!inserted && it->second == current) return false;
  it->second = current;
  return true;
}

void MonitorImpl::report(Source source, Action action, std::string subject, std::string old_value,
                         std::string new_value, Clock::time_point detected) {
  Change change;
  change.source = source;
  change.action = action;
  change.subject = std::move(subject);
  change.old_value = std::move(old_value);
  change.new_value = std::move(new_value);
  change.detected_at = detected;
  emit(std::move(change));
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
