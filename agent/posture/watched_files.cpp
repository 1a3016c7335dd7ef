#include "agent/posture/watched_files.h"

namespace warden::agent::posture {

namespace fs = std::filesystem;

Status WatchedFiles::add(const fs::path& path, Trigger trigger) {
  const fs::path file = path.lexically_normal();
  auto wd = watcher_.watch(file.parent_path(), os::WatchKind::kFiles);
  if (!wd) return fail(std::move(wd).error().context("posture"));
  dirs_[*wd] = file.parent_path();
  files_[file].trigger = trigger;
  return ok();
}

void WatchedFiles::rebaseline() {
  for (auto& [path, file] : files_) {
    file.reference = file_state(path);
    file.reported.clear();
  }
}

void WatchedFiles::on_event(const os::FsEvent& event) {
  auto it = dirs_.find(event.watch);
  if (it == dirs_.end()) return;
  if (event.ignored) {
    dirs_.erase(it);
    return;
  }
  if (!event.is_dir && !event.name.empty()) check(it->second / std::string(event.name));
}

void WatchedFiles::rescan() {
  for (const auto& [path, file] : files_) check(path);
}

void WatchedFiles::check(const fs::path& path) {
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
  observer_.observe({file.trigger, path.string(), file.reference, current, std::nullopt,
                     std::nullopt, "", now_()});
}

}  // namespace warden::agent::posture
