#include "platform/base/file.h"

#include <sys/stat.h>

#include <filesystem>

#include <gtest/gtest.h>

namespace warden {
namespace {

TEST(AtomicFile, ReplacesContentWithModeAndLeavesNoTemporary) {
  auto dir =
      std::filesystem::temp_directory_path() / ("warden-file-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  auto path = dir / "state.bin";
  ASSERT_TRUE(write_file_atomic(path, to_bytes("old"), 0600));
  ASSERT_TRUE(write_file_atomic(path, to_bytes("new content"), 0640));
  EXPECT_EQ(to_string(*read_file(path)), "new content");
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640U);
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), {}), 1);
  std::filesystem::remove_all(dir);
}

TEST(AtomicFile, MissingDirectoryAndOversizedReadsFail) {
  EXPECT_EQ(write_file_atomic("/nonexistent-dir/x", to_bytes("x")).error().code,
            ErrorCode::kNotFound);
  EXPECT_EQ(read_file("/nonexistent-file").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(read_file("/proc/self/status", 4).error().code, ErrorCode::kLimitExceeded);
}

}  // namespace
}  // namespace warden
