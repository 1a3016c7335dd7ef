# Every external dependency, found once. All come from Debian 12 packages that
# scripts/bootstrap installs.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
find_package(OpenSSL 3 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(Boost 1.81 REQUIRED CONFIG)
find_package(spdlog REQUIRED)
find_package(fmt REQUIRED)
find_package(tomlplusplus REQUIRED)
find_package(GTest REQUIRED)
find_package(SQLite3 REQUIRED)
find_package(PostgreSQL REQUIRED)
if(WARDEN_BENCH)
  find_package(benchmark REQUIRED)
endif()

pkg_check_modules(TSS2 REQUIRED IMPORTED_TARGET tss2-esys tss2-mu tss2-rc tss2-tctildr)
pkg_check_modules(TSS2_MU REQUIRED IMPORTED_TARGET tss2-mu)
pkg_check_modules(LIBCBOR REQUIRED IMPORTED_TARGET libcbor)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)

# Header-only packages without CMake config files.
find_path(CLI11_INCLUDE_DIR CLI/CLI.hpp REQUIRED)
find_package(tl-expected REQUIRED)
add_library(warden_cli11 INTERFACE)
target_include_directories(warden_cli11 SYSTEM INTERFACE ${CLI11_INCLUDE_DIR})
