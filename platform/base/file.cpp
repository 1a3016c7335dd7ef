#include "platform/base/file.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <utility>

#include <fmt/format.h>

namespace warden {
namespace {

Error errno_error(std::string_view op, const std::filesystem::path& path) {
  int e = errno;
  return Error{e == ENOENT
                   ? ErrorCode::kNotFound
                   : (e == EACCES || e == EPERM ? ErrorCode::kPermissionDenied : ErrorCode::kIo),
               fmt::format("{} {}: {}", op, path.string(), std::strerror(e)), 0, 0};
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&&) = delete;
  Fd& operator=(Fd&&) = delete;
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

Status write_file_atomic(const std::filesystem::path& path, ByteSpan data, mode_t mode) {
  std::filesystem::path dir = path.has_parent_path() ? path.parent_path() : ".";
  std::string tmpl = (dir / ("." + path.filename().string() + ".XXXXXX")).string();
  int raw = ::mkstemp(tmpl.data());
  if (raw < 0) return fail(errno_error("create temporary file for", path));
  Fd fd(raw);
  auto cleanup_fail = [&](std::string_view op) {
    Error e = errno_error(op, path);
    ::unlink(tmpl.c_str());
    return fail(std::move(e));
  };
  if (::fchmod(fd.get(), mode) != 0) return cleanup_fail("chmod");
  std::size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return cleanup_fail("write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return cleanup_fail("fsync");
  if (::close(fd.release()) != 0) return cleanup_fail("close");
  if (::rename(tmpl.c_str(), path.c_str()) != 0) return cleanup_fail("rename");
  Fd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dfd.get() >= 0) ::fsync(dfd.get());
  return ok();
}

Result<Bytes> read_file(const std::filesystem::path& path, std::size_t max_size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return fail(errno_error("open", path));
  Bytes out;
  std::uint8_t buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail(errno_error("read", path));
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > max_size) {
      return fail(
          ErrorCode::kLimitExceeded,
          fmt::format("read {}: larger than the limit of {} bytes", path.string(), max_size));
    }
    out.insert(out.end(), buf, buf + n);
  }
  return out;
}

}  // namespace warden
