#include "agent/posture/container_source.h"

#include <vector>

#include "agent/posture/container_log.h"
#include "platform/base/log.h"
#include "platform/os/cgroupfs.h"
#include "platform/os/workload_identity.h"

namespace warden::agent::posture {

namespace fs = std::filesystem;
namespace cel = attest::cel;

fs::path ContainerSource::dir_of(const std::string& rel) const {
  return rel.empty() ? root_ : root_ / rel;
}

std::string ContainerSource::cel_path(const std::string& rel) const {
  if (prefix_.empty()) return "/" + rel;
  return rel.size() > prefix_.size() ? rel.substr(prefix_.size()) : "/";
}

std::string ContainerSource::rel_of(const std::string& cel_cgroup_path) const {
  const std::string trimmed = cel_cgroup_path.empty() || cel_cgroup_path.front() != '/'
                                  ? cel_cgroup_path
                                  : cel_cgroup_path.substr(1);
  return prefix_.empty() ? trimmed : join(prefix_, trimmed);
}

Status ContainerSource::start() {
  root_ = opts_.cgroupfs_root.lexically_normal();
  prefix_ = os::cgroup_v1_hierarchy(root_);
  auto wd = watcher_.watch(dir_of(prefix_), os::WatchKind::kSubdirs);
  if (!wd) return fail(std::move(wd).error().context("posture"));
  watches_[*wd] = prefix_;
  counters_.cgroup_watches = 1;
  starting_ = true;
  std::set<std::string> seen;
  scan(prefix_, &seen);
  // Containers the log lists as running that are gone stopped while the agent was down.
  if (opts_.container_log != nullptr) {
    for (const auto& [id, content] : opts_.container_log->running()) {
      if (rels_by_id_.count(id) != 0) continue;
      const std::string rel = rel_of(content.cgroup_path);
      started_[id] = content;
      id_by_rel_[rel] = id;
      rels_by_id_[id].insert(rel);
      gone(rel);
    }
  }
  starting_ = false;
  return ok();
}

void ContainerSource::on_event(const os::FsEvent& event) {
  auto it = watches_.find(event.watch);
  if (it == watches_.end()) return;
  if (event.ignored) {
    --counters_.cgroup_watches;
    watches_.erase(it);
    return;
  }
  if (!event.is_dir || event.name.empty()) return;
  const std::string rel = join(it->second, event.name);  // handlers may add watches
  if (event.added()) dir_added(rel, nullptr);
  if (event.removed()) dir_removed(rel);
}

void ContainerSource::rescan() {
  std::set<std::string> seen;
  scan(prefix_, &seen);
  std::vector<std::string> missing;
  for (const auto& [rel, id] : id_by_rel_) {
    if (seen.count(rel) == 0) missing.push_back(rel);
  }
  for (const auto& rel : missing) gone(rel);
}

void ContainerSource::scan(const std::string& rel, std::set<std::string>* seen) {
  for (const auto& name : os::subdirectories(dir_of(rel))) dir_added(join(rel, name), seen);
}

void ContainerSource::dir_added(const std::string& rel, std::set<std::string>* seen) {
  auto scope = os::container_scope(rel);
  if (!scope && !opts_.containerd_state.empty()) {
    // A ctr container's shape is any two-level path: only containerd's own record says so.
    if (auto task = os::containerd_task_name(cel_path(rel));
        task && os::containerd_task_exists(opts_.containerd_state, *task)) {
      scope = os::ContainerScope{task->container_id(), "containerd"};
    }
  }
  if (scope) {
    if (seen != nullptr) seen->insert(rel);
    appeared(rel, *scope);
    return;  // a container's own sub-cgroups are its business
  }
  if (depth_of(rel) > opts_.max_depth) return;
  if (counters_.cgroup_watches >= opts_.max_watches) {
    ++counters_.cgroup_watch_limit_hits;
    if (!limit_logged_) {
      limit_logged_ = true;
      spdlog::warn(
          "posture: {} cgroup directories watched (posture.max_cgroup_watches); "
          "containers below {} are not seen",
          opts_.max_watches, rel);
    }
    return;
  }
  auto wd = watcher_.watch(dir_of(rel), os::WatchKind::kSubdirs);
  if (!wd) return;  // removed again before we got to it
  if (watches_.count(*wd) == 0) ++counters_.cgroup_watches;
  watches_[*wd] = rel;
  // Subdirectories created before the watch existed produced no event: list them.
  scan(rel, seen);
}

void ContainerSource::dir_removed(const std::string& rel) {
  std::vector<std::string> removed;
  for (auto it = id_by_rel_.lower_bound(rel); it != id_by_rel_.end(); ++it) {
    if (it->first != rel && it->first.rfind(rel + "/", 0) != 0) break;
    removed.push_back(it->first);
  }
  for (const auto& r : removed) gone(r);
}

void ContainerSource::appeared(const std::string& rel, const os::ContainerScope& scope) {
  if (id_by_rel_.count(rel) != 0) return;
  const auto detected = now_();
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
  if (content.image_ref.empty() && content.image_digest.empty()) {
    // Said, not guessed: tokens then carry image_ref "unknown" and image rules do not match.
    spdlog::info("posture: container {} ({}): image unknown (no record of it from the runtime)",
                 scope.id, scope.runtime);
  }
  started_[scope.id] = content;
  bool logged = false;
  if (opts_.container_log != nullptr) {
    logged = opts_.container_log->running().count(scope.id) != 0;
    if (!logged) measure(content);
  }
  if (logged && starting_) return;  // already measured before an agent restart
  observer_.observe({Trigger::kContainerStarted, scope.id, kAbsent, "running", scope.id,
                     scope.runtime, rel, detected});
}

void ContainerSource::gone(const std::string& rel) {
  auto it = id_by_rel_.find(rel);
  if (it == id_by_rel_.end()) return;
  const auto detected = now_();
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
  // Revocation must not wait for the disk and the TPM: report first, then measure. (A start is
  // measured first, so that anything done for the new container is covered by the next quote.)
  observer_.observe(
      {Trigger::kContainerStopped, id, "running", "stopped", id, content.runtime, rel, detected});
  if (opts_.container_log != nullptr) measure(content);
}

void ContainerSource::measure(const cel::ContainerContent& content) {
  own_writes_.expect(opts_.container_log->path());
  auto record = opts_.container_log->append(content);
  if (record) {
    ++counters_.container_log_appends;
    return;
  }
  own_writes_.consume(opts_.container_log->path().lexically_normal());
  ++counters_.container_log_errors;
  spdlog::error("posture: container {} not measured: {}", content.container_id,
                record.error().message);
}

}  // namespace warden::agent::posture
