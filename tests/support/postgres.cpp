#include "tests/support/postgres.h"

#include <grp.h>
#include <pwd.h>
#include <stdexcept>
#include <unistd.h>

namespace warden::test {
namespace {

std::filesystem::path find_bin_dir() {
  std::filesystem::path root = "/usr/lib/postgresql";
  std::error_code ec;
  std::filesystem::path best;
  for (const auto& entry : std::filesystem::directory_iterator(root, ec)) {
    auto bin = entry.path() / "bin";
    if (std::filesystem::exists(bin / "initdb") && std::filesystem::exists(bin / "pg_ctl") &&
        (best.empty() || entry.path() > best.parent_path())) {
      best = bin;
    }
  }
  return best;
}

}  // namespace

std::unique_ptr<Postgres> Postgres::start(std::string& why) {
  std::unique_ptr<Postgres> pg(new Postgres());
  pg->bin_ = find_bin_dir();
  if (pg->bin_.empty()) {
    why = "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin";
    return nullptr;
  }
  pg->dir_ = std::make_unique<TempDir>("warden-pg");
  auto base = pg->dir_->path();
  if (geteuid() == 0) {
    struct passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      why = "running as root and there is no 'postgres' user to run initdb";
      return nullptr;
    }
    // The temp dir itself may not be traversable by postgres: give it the whole tree.
    if (chown(base.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      why = "chown " + base.string() + " failed";
      return nullptr;
    }
    std::filesystem::permissions(base, std::filesystem::perms::owner_all);
    // Parents (e.g. /tmp) must be searchable: /tmp is 1777; TMPDIR overrides may not be.
    pg->as_user_ = {"runuser", "-u", "postgres", "--"};
  }
  auto data = base / "data";
  auto sock = base / "sock";
  std::filesystem::create_directories(sock);
  if (geteuid() == 0) {
    struct passwd* pw = getpwnam("postgres");
    if (chown(sock.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      why = "chown socket dir failed";
      return nullptr;
    }
  }
  auto run = [&](std::vector<std::string> argv) {
    std::vector<std::string> full = pg->as_user_;
    full.insert(full.end(), argv.begin(), argv.end());
    return run_command(full, {{"LC_ALL", "C"}}, std::chrono::seconds(120));
  };
  auto init = run({(pg->bin_ / "initdb").string(), "-D", data.string(), "-A", "trust", "-U",
                   "warden", "-E", "UTF8", "--locale=C", "--no-sync"});
  if (init.exit_code != 0) {
    why = "initdb failed: " + init.out;
    return nullptr;
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    pg->port_ = free_tcp_port();
    std::string opts = "-c listen_addresses=127.0.0.1 -p " + std::to_string(pg->port_) + " -k " +
                       sock.string() +
                       " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
                       " -c max_connections=100";
    auto started = run({(pg->bin_ / "pg_ctl").string(), "-D", data.string(), "-l",
                        (base / "server.log").string(), "-w", "-t", "60", "-o", opts, "start"});
    if (started.exit_code == 0) {
      pg->running_ = true;
      return pg;
    }
    why = "pg_ctl start failed: " + started.out;
  }
  return nullptr;
}

Postgres::~Postgres() {
  if (running_) {
    std::vector<std::string> argv = as_user_;
    argv.insert(argv.end(), {(bin_ / "pg_ctl").string(), "-D", (dir_->path() / "data").string(),
                             "-m", "immediate", "-w", "stop"});
    run_command(argv, {}, std::chrono::seconds(60));
  }
}

std::string Postgres::conninfo(const std::string& database) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=warden dbname=" + database +
         " connect_timeout=10";
}

std::string Postgres::create_database(const std::string& name) {
  std::vector<std::string> argv = as_user_;
  argv.insert(argv.end(), {(bin_ / "createdb").string(), "-h", "127.0.0.1", "-p",
                           std::to_string(port_), "-U", "warden", name});
  auto out = run_command(argv, {}, std::chrono::seconds(60));
  if (out.exit_code != 0) throw std::runtime_error("createdb " + name + ": " + out.out);
  return conninfo(name);
}

}  // namespace warden::test
