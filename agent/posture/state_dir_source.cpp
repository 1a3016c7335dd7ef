#include "agent/posture/state_dir_source.h"

#include <vector>

namespace warden::agent::posture {

namespace fs = std::filesystem;

namespace {

/// write_file_atomic's temporary files: ".<name>.XXXXXX".
bool is_atomic_temp(std::string_view name) {
  if (name.size() < 9 || name.front() != '.') return false;
  const auto dot = name.rfind('.');
  return dot > 0 && name.size() - dot == 7;
}

}  // namespace

Status StateDirSource::start() {
  auto wd = watcher_.watch(dir_, os::WatchKind::kTree);
  if (!wd) return fail(std::move(wd).error().context("posture"));
  watches_[*wd] = "";
  return ok();
}

void StateDirSource::rebaseline() {
  reference_.clear();
  reported_.clear();
  scan("", true);
}

void StateDirSource::watch_subdir(const std::string& rel) {
  if (auto wd = watcher_.watch(dir_ / rel, os::WatchKind::kTree); wd) watches_[*wd] = rel;
}

void StateDirSource::scan(const std::string& rel, bool take_reference) {
  std::error_code ec;
  fs::directory_iterator it(rel.empty() ? dir_ : dir_ / rel, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (is_atomic_temp(name)) continue;
    const std::string child = join(rel, name);
    std::error_code type_ec;
    if (it->is_directory(type_ec)) {
      if (depth_of(child) < kDepth) {
        watch_subdir(child);
        scan(child, take_reference);
      }
    } else if (take_reference) {
      reference_[child] = file_state(dir_ / child);
    } else {
      check(child);
    }
  }
}

void StateDirSource::on_event(const os::FsEvent& event) {
  auto it = watches_.find(event.watch);
  if (it == watches_.end()) return;
  if (event.ignored) {
    watches_.erase(it);
    return;
  }
  if (event.self_gone) {
    observer_.observe({Trigger::kStateDirGone, dir_.string(), "present", kAbsent, std::nullopt,
                       std::nullopt, "", now_()});
    return;
  }
  if (event.name.empty() || is_atomic_temp(event.name)) return;
  const std::string rel = join(it->second, event.name);  // handlers may add watches
  if (event.is_dir) {
    if (event.added() && depth_of(rel) < kDepth) {
      watch_subdir(rel);
      scan(rel, false);
    }
  } else if (!event.created) {
    // A file is checked when closed after writing, not when created (still empty).
    check(rel);
  }
}

void StateDirSource::rescan() {
  std::vector<std::string> known;
  for (const auto& [rel, digest] : reference_) known.push_back(rel);
  for (const auto& rel : known) check(rel);
  scan("", false);
}

void StateDirSource::check(const std::string& rel) {
  const fs::path path = dir_ / rel;
  const std::string current = file_state(path);
  auto ref_it = reference_.find(rel);
  const std::string reference = ref_it == reference_.end() ? kAbsent : ref_it->second;
  if (own_writes_.consume(path)) {
    ++counters_.suppressed_own_writes;
    if (current == kAbsent) {
      reference_.erase(rel);
    } else {
      reference_[rel] = current;
    }
    reported_.erase(rel);
    return;
  }
  if (!is_new(reported_, rel, reference, current)) return;
  observer_.observe({Trigger::kStateFileChanged, path.string(), reference, current, std::nullopt,
                     std::nullopt, "", now_()});
}

}  // namespace warden::agent::posture
