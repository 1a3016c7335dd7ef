// wardend: set up (config, secure heap, issuer client, sockets), attest, signal ready, then run
// the loop: the local API (accepted on the io_context, served on its connection threads), periodic
// work (device token renewal, retries, status list polling) on a maintenance thread, the watchdog
// on a timer.
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <grp.h>
#include <mutex>
#include <optional>
#include <signal.h>
#include <string>
#include <thread>
#include <utility>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/agent.h"
#include "agent/api/event_bus.h"
#include "agent/api/local_server.h"
#include "agent/api/refusal_budget.h"
#include "agent/config/agent_config.h"
#include "agent/issuer_client.h"
#include "agent/posture/container_log.h"
#include "agent/posture/image_lookup.h"
#include "agent/posture/posture.h"
#include "agent/posture/tpm_backends.h"
#include "agent/state_store.h"
#include "platform/base/clock.h"
#include "platform/base/log.h"
#include "platform/base/version.h"
#include "platform/os/privilege_drop.h"
#include "platform/os/service_notify.h"
#include "platform/os/workload_identity.h"

namespace {

namespace asio = boost::asio;
using warden::agent::AgentConfig;

std::optional<gid_t> group_id(const std::string& name) {
  if (name.empty()) return std::nullopt;
  struct group* g = ::getgrnam(name.c_str());
  if (g == nullptr) return std::nullopt;
  return g->gr_gid;
}

warden::Status become(const warden::os::ServiceAccount& account,
                      const std::filesystem::path& state_dir) {
  if (::getuid() == account.uid) return warden::ok();
  WARDEN_TRY_STATUS(warden::agent::StateStore(state_dir).prepare());
  WARDEN_TRY_STATUS(warden::os::hand_over_state_dir(state_dir, account));
  WARDEN_TRY_STATUS(warden::os::drop_privileges(account));
  spdlog::info(
      "running as {} (uid {}, gid {}, {} supplementary groups) with CAP_DAC_READ_SEARCH "
      "CAP_SYS_PTRACE and no_new_privs",
      account.name, account.uid, account.gid, account.groups.size());
  return warden::ok();
}

/// Every API connection holds a descriptor (a watch stream too), beside the daemon's own (TPM,
/// issuer connections, inotify, state files, the journal). systemd starts a service with a soft
/// limit of 1,024, which the default API limits alone exceed: raise the soft limit to the hard
/// one, and refuse to start when the configured limits still do not fit, rather than failing
/// accept() with EMFILE under load.
warden::Status fit_descriptor_limit(const AgentConfig& c) {
  constexpr rlim_t kOwnDescriptors = 256;
  const rlim_t need =
      rlim_t{c.api_max_connections} + rlim_t{c.api_admin_max_connections} + kOwnDescriptors;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) {
    return warden::fail(warden::ErrorCode::kIo,
                        std::string("getrlimit(RLIMIT_NOFILE): ") + std::strerror(errno));
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < lim.rlim_max) {
    const rlimit raised{lim.rlim_max, lim.rlim_max};
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) {
      lim = raised;
    } else {
      spdlog::warn("setrlimit(RLIMIT_NOFILE, {}): {}", lim.rlim_max, std::strerror(errno));
    }
  }
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
    return warden::fail(
        warden::ErrorCode::kInvalidArgument,
        "open file limit " + std::to_string(lim.rlim_cur) + " (hard " +
            std::to_string(lim.rlim_max) + ") is below the " + std::to_string(need) +
            " descriptors that api.max_connections (" + std::to_string(c.api_max_connections) +
            ") + api.admin_max_connections (" + std::to_string(c.api_admin_max_connections) +
            ") + " + std::to_string(kOwnDescriptors) +
            " for the daemon need: raise LimitNOFILE= (ulimit -n) or lower those limits");
  }
  spdlog::debug("open file limit {} for {} API connections", lim.rlim_cur,
                c.api_max_connections + c.api_admin_max_connections);
  return warden::ok();
}

// Periodic work off the I/O threads: TPM commands and issuer round trips block. Posture changes
// arrive from the monitor's thread through a queue; a thread of their own applies them in order
// (Agent::react: tokens withdrawn, the state changed), so that a round trip in progress on the
// maintenance thread never delays them, and hands the issuer's part to the maintenance thread
// (Agent::follow_up).
class Maintenance {
 public:
  Maintenance(warden::agent::Agent& agent, const AgentConfig& config,
              std::filesystem::path config_path)
      : agent_(agent),
        config_(config),
        config_path_(std::move(config_path)),
        status_poll_(config.status_list_poll_interval),
        device_poll_(config.device_status_poll_interval),
        posture_thread_([this] { react(); }),
        reporter_thread_([this] { report(); }),
        thread_([this] { run(); }) {}
  ~Maintenance() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    posture_cv_.notify_all();
    reporter_cv_.notify_all();
    thread_.join();
    reporter_thread_.join();
    posture_thread_.join();
  }
  void set_status_poll(std::chrono::milliseconds d, std::chrono::milliseconds device) {
    std::lock_guard lock(mu_);
    status_poll_ = d;
    device_poll_ = device;
  }
  void enqueue(const warden::agent::posture::Change& change) {
    {
      std::lock_guard lock(mu_);
      if (changes_.size() < 4096) changes_.push_back(change);
    }
    posture_cv_.notify_all();
  }
  /// The image recorded for a running container (any thread).
  std::optional<warden::agent::posture::ImageInfo> image_of(std::string_view id) const {
    const auto* log = container_log_ptr_.load();
    if (log == nullptr) return std::nullopt;
    const auto start = log->running_container(id);
    if (!start) return std::nullopt;
    return warden::agent::posture::ImageInfo{start->image_ref, start->image_digest};
  }
  /// Called by the agent before its own state writes (any thread, agent lock held).
  void expect_state_write(const std::filesystem::path& path) {
    if (auto* m = monitor_.load()) m->expect_state_write(path);
  }

 private:
  // Before the first attestation: opening the log starts a new one when the PCR no longer replays
  // from it (after a reboot), and the first quote must be sent with that log, not the stale one.
  // The probe and the extender share the agent's TPM connection and its lock.
  void open_container_log() {
    namespace posture = warden::agent::posture;
    const warden::tpm::Tpm& tpm = agent_.tpm();
    probe_ = std::make_unique<posture::TpmStateProbe>(tpm, config_.quoted_pcrs());
    extender_ = std::make_unique<posture::TpmPcrExtender>(tpm);
    posture::ContainerLogOptions log_options;
    log_options.path = config_.cel_log_path();
    log_options.pcr = config_.container_pcr;
    log_options.allow_resettable_pcr = config_.allow_resettable_pcr;
    log_options.banks.clear();
    for (const auto& bank : config_.quoted_pcrs().banks) log_options.banks.push_back(bank.alg);
    // First start: the state dir does not exist yet (the agent makes it 0700 too).
    if (::mkdir(config_.state_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      spdlog::warn("state dir {}: {}", config_.state_dir.string(), std::strerror(errno));
    }
    auto log = posture::ContainerEventLog::open(log_options, *extender_);
    if (!log) {
      spdlog::warn("container event log: {} (container starts are not measured)",
                   log.error().message);
    } else {
      container_log_ = std::move(*log);
      container_log_ptr_.store(container_log_.get());
    }
  }

  void start_monitor() {
    namespace posture = warden::agent::posture;
    posture::MonitorOptions options;
    options.cgroupfs_root = config_.cgroupfs_root;
    options.securityfs_root = config_.securityfs_root;
    options.pcr_poll_interval = config_.pcr_poll_interval;
    options.ima_poll_interval = config_.ima_poll_interval;
    options.config_file = config_path_;
    options.watched_files = config_.policy_files;
    options.state_dir = config_.state_dir;
    options.tpm = probe_.get();
    options.container_log = container_log_.get();
    options.image_lookup = posture::runtime_image_lookup(
        {config_.docker_root, config_.podman_storage, config_.containerd_state});
    options.containerd_state = config_.containerd_state;
    auto monitor = posture::Monitor::start(std::move(options),
                                           [this](const posture::Change& c) { enqueue(c); });
    if (!monitor) {
      spdlog::error("posture monitor: {} (running without posture monitoring)",
                    monitor.error().message);
      return;
    }
    owned_monitor_ = std::move(*monitor);
    monitor_.store(owned_monitor_.get());
    seen_attestations_ = agent_.attestations();
  }

  void react() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      posture_cv_.wait(lock, [this] { return stop_ || !changes_.empty(); });
      std::deque<warden::agent::posture::Change> changes;
      changes.swap(changes_);
      lock.unlock();
      for (const auto& c : changes) agent_.react(c);
      lock.lock();
      if (!changes.empty()) {
        follow_up_ = true;
        report_ = true;
        cv_.notify_all();
        reporter_cv_.notify_all();
      }
    }
  }

  // The revocation reports a change queued go to the issuer from here, so that they wait
  // neither behind a round on the maintenance thread nor hold up the next change's react().
  void report() {
    std::unique_lock lock(mu_);
    while (!stop_) {
      reporter_cv_.wait(lock, [this] { return stop_ || report_; });
      if (stop_) break;
      report_ = false;
      lock.unlock();
      agent_.deliver_reports();
      lock.lock();
    }
  }

  void run() {
    open_container_log();
    if (auto started = agent_.start(); !started) {
      spdlog::error("start: {} (retrying with backoff)", started.error().message);
    }
    start_monitor();
    std::unique_lock lock(mu_);
    auto next_poll = std::chrono::steady_clock::now() + status_poll_;
    auto next_device_poll = std::chrono::steady_clock::now() + device_poll_;
    while (!stop_) {
      const bool follow_up = std::exchange(follow_up_, false);
      const auto status_poll = status_poll_;
      const auto device_poll = device_poll_;
      lock.unlock();
      if (follow_up) agent_.follow_up();
      const auto wait = agent_.tick();
      if (std::chrono::steady_clock::now() >= next_poll) {
        if (auto polled = agent_.poll_status_list(); !polled) {
          spdlog::warn("status list: {}", polled.error().message);
        }
        next_poll = std::chrono::steady_clock::now() + status_poll;
      }
      // An admin's revocation at the issuer is learnt within one interval, not at the next
      // token request that fails.
      if (std::chrono::steady_clock::now() >= next_device_poll) {
        if (auto polled = agent_.poll_device_status(); !polled) {
          spdlog::debug("device status: {}", polled.error().message);
        }
        next_device_poll = std::chrono::steady_clock::now() + device_poll;
      }
      // Outside the agent's lock: rebaseline() reads the TPM through it.
      if (const auto n = agent_.attestations(); n != seen_attestations_ && owned_monitor_) {
        seen_attestations_ = n;
        owned_monitor_->rebaseline();
      }
      lock.lock();
      cv_.wait_for(lock, wait, [this] { return stop_ || follow_up_; });
    }
    lock.unlock();
    monitor_.store(nullptr);
    owned_monitor_.reset();
  }

  warden::agent::Agent& agent_;
  AgentConfig config_;
  std::filesystem::path config_path_;
  std::unique_ptr<warden::agent::posture::TpmStateProbe> probe_;
  std::unique_ptr<warden::agent::posture::TpmPcrExtender> extender_;
  std::unique_ptr<warden::agent::posture::ContainerEventLog> container_log_;
  std::unique_ptr<warden::agent::posture::Monitor> owned_monitor_;
  std::atomic<warden::agent::posture::Monitor*> monitor_{nullptr};
  std::atomic<const warden::agent::posture::ContainerEventLog*> container_log_ptr_{nullptr};
  std::uint64_t seen_attestations_ = 0;
  // guards stop_, status_poll_, device_poll_, changes_, follow_up_ and report_
  std::mutex mu_;
  std::condition_variable cv_;           // the maintenance thread's
  std::condition_variable posture_cv_;   // the posture thread's
  std::condition_variable reporter_cv_;  // the reporter thread's
  bool stop_ = false;
  bool follow_up_ = false;
  bool report_ = false;
  std::chrono::milliseconds status_poll_;
  std::chrono::milliseconds device_poll_;
  std::deque<warden::agent::posture::Change> changes_;
  std::thread posture_thread_;
  std::thread reporter_thread_;
  std::thread thread_;
};

int run(int argc, char** argv) {
  CLI::App app{
      "wardend: the Warden attestation agent. Uses this device's TPM 2.0 to enroll with a "
      "warden-issuer (EK certificate, attestation key, credential activation), attests measured "
      "boot, IMA and container state with TPM quotes, and hands workloads device-bound tokens "
      "and proofs over a local Unix socket (curl --unix-socket /run/warden/workload.sock "
      "-H 'workload.spiffe.io: true' ...). Workloads are identified by the kernel (peer "
      "credentials, cgroup, executable), never by what they claim.\n\n"
      "Signals: SIGTERM/SIGINT stop (keys wiped), SIGHUP reloads the configuration. Under "
      "systemd (Type=notify) it reports STATUS=, READY=1 once serving, and WATCHDOG=1."};
  app.set_version_flag("--version", std::string(warden::version()));
  std::string config_path = "/etc/warden/agent.toml";
  std::string log_level;
  app.add_option("-c,--config", config_path,
                 "configuration file (TOML; keys in docs/agent-config.md, WARDEN_<SECTION>_<KEY> "
                 "environment variables override it)")
      ->capture_default_str();
  app.add_option("--log-level", log_level,
                 "trace, debug, info, warn or error (default: agent.log_level of the config)");
  CLI11_PARSE(app, argc, argv);

  auto config = warden::agent::load_agent_config(config_path);
  if (!config) {
    warden::log::init("wardend", log_level.empty() ? "info" : log_level);
    spdlog::error("{}", config.error().message);
    return 2;
  }
  warden::log::init("wardend", log_level.empty() ? config->log_level : log_level);
  spdlog::info("wardend {} starting (config {}, TPM {}, issuer {})", warden::version(), config_path,
               config->tcti, config->issuer_url);

  if (auto fits = fit_descriptor_limit(*config); !fits) {
    spdlog::error("{}", fits.error().message);
    return 2;
  }

  // Refused before anything starts: a typo must not leave a root daemon running.
  std::optional<warden::os::ServiceAccount> account;
  if (!config->user.empty()) {
    auto found = warden::os::find_service_account(config->user);
    if (!found) {
      spdlog::error("{}", found.error().message);
      return 2;
    }
    account = std::move(*found);
  }

  // Logs its own warning when mlock is refused (the heap still works, unlocked).
  if (auto locked = warden::agent::init_locked_key_memory(); !locked) {
    spdlog::error("{}", locked.error().message);
    return 1;
  }
  auto issuer = warden::agent::IssuerClient::create(config->issuer_url, config->issuer_ca_file);
  if (!issuer) {
    spdlog::error("{}", issuer.error().message);
    return 1;
  }

  asio::io_context io;
  warden::agent::api::EventBus bus;
  warden::os::ServiceNotifier notifier;
  warden::SystemClock clock;
  warden::SystemRandom random;
  warden::agent::AgentOptions options;
  options.config = *config;
  options.issuer = issuer->get();
  options.clock = &clock;
  options.random = &random;
  options.bus = &bus;
  options.notifier = &notifier;
  Maintenance* maintenance_ptr = nullptr;  // set once the maintenance thread exists
  std::mutex hook_mu;                      // guards maintenance_ptr
  options.before_state_write = [&](const std::filesystem::path& p) {
    std::lock_guard lock(hook_mu);
    if (maintenance_ptr != nullptr) maintenance_ptr->expect_state_write(p);
  };
  options.image_of = [&](std::string_view id) -> std::optional<warden::agent::posture::ImageInfo> {
    std::lock_guard lock(hook_mu);
    return maintenance_ptr != nullptr ? maintenance_ptr->image_of(id) : std::nullopt;
  };
  auto agent = warden::agent::Agent::create(std::move(options));
  if (!agent) {
    spdlog::error("{}", agent.error().message);
    return 1;
  }

  warden::os::WorkloadIdentityResolver resolver(config->proc_root, config->containerd_state);
  warden::agent::api::LocalServerOptions server_options;
  server_options.workload_socket = config->workload_socket;
  server_options.workload_socket_mode = config->workload_socket_mode;
  server_options.admin_socket = config->admin_socket;
  server_options.admin_socket_mode = config->admin_socket_mode;
  server_options.admin_gid = group_id(config->admin_group);
  // The sockets are bound as root but used by the service account once privileges are dropped.
  if (account) server_options.agent_uid = account->uid;
  server_options.max_connections = config->api_max_connections;
  server_options.admin_max_connections = config->api_admin_max_connections;
  server_options.max_connections_per_uid = config->api_max_connections_per_uid;
  server_options.max_watch_per_uid = config->api_max_watch_per_uid;
  server_options.idle_timeout = config->api_idle_timeout;
  server_options.request_timeout = config->api_request_timeout;
  // Between the API and the agent: a uid flooding requests it is refused is answered 429 here,
  // without the issuer round trips it would cost.
  warden::agent::api::RefusalBudgetOptions budget_options;
  budget_options.burst = config->api_refusal_burst;
  budget_options.per_second = config->api_refusals_per_second;
  warden::agent::api::RefusalBudget budget(**agent, budget_options);
  auto server = warden::agent::api::LocalServer::bind(io, server_options, budget, resolver, bus);
  if (!server) {
    spdlog::error("local API: {}", server.error().message);
    return 1;
  }
  spdlog::info("local API on {} (admin {}), at most {} + {} admin connections, {} per uid",
               config->workload_socket.string(), config->admin_socket.string(),
               server_options.max_connections, server_options.admin_max_connections,
               server_options.max_connections_per_uid);

  // Root was needed for the sockets (and, before, the secure heap's mlock and the issuer's CA):
  // from here on, the service account with its two capabilities. No thread exists yet.
  if (account) {
    if (auto dropped = become(*account, config->state_dir); !dropped) {
      spdlog::error("{}", dropped.error().message);
      return 1;
    }
  }

  auto maintenance = std::make_unique<Maintenance>(**agent, *config, config_path);
  {
    std::lock_guard lock(hook_mu);
    maintenance_ptr = maintenance.get();
  }

  asio::signal_set stop_signals(io, SIGTERM, SIGINT);
  stop_signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    spdlog::info("signal {}: stopping", sig);
    notifier.stopping();
    (*server)->stop();  // also ends every /v1/watch stream
    io.stop();
  });
  asio::signal_set hup(io, SIGHUP);
  std::function<void()> wait_hup = [&] {
    hup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      notifier.reloading();
      auto reloaded = warden::agent::load_agent_config(config_path);
      if (!reloaded) {
        spdlog::error("reload: {} (keeping the running configuration)", reloaded.error().message);
      } else {
        (*agent)->reload(*reloaded);
        maintenance->set_status_poll(reloaded->status_list_poll_interval,
                                     reloaded->device_status_poll_interval);
      }
      auto st = (*agent)->status();
      notifier.ready(st ? st->state : "reloaded");
      wait_hup();
    });
  };
  wait_hup();

  asio::steady_timer watchdog(io);
  std::function<void()> ping;
  if (auto interval = warden::os::ServiceNotifier::watchdog_ping_interval()) {
    ping = [&, interval = *interval] {
      notifier.watchdog();
      watchdog.expires_after(interval);
      watchdog.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) ping();
      });
    };
    ping();
  }

  (*server)->serve();
  io.run();
  server->reset();  // joins the connection threads: no API call reaches the agent after this
  {
    std::lock_guard lock(hook_mu);
    maintenance_ptr = nullptr;
  }
  maintenance.reset();
  (*agent)->shutdown();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
