#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "tests/support/process.h"

namespace warden::test {

/// A private PostgreSQL server for one test binary: initdb + pg_ctl from Debian's postgresql
/// package (/usr/lib/postgresql/<major>/bin) in a temp dir, listening on 127.0.0.1 at a free port
/// with its own socket directory; stopped (immediate mode) on destruction. Runs the server as
/// the `postgres` system user when the tests run as root (initdb refuses root). Never touches the
/// cluster that the Debian package may have started.
class Postgres {
 public:
  /// Starts a server, or returns nullptr with `why` set when PostgreSQL is not installed.
  static std::unique_ptr<Postgres> start(std::string& why);
  ~Postgres();
  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  /// libpq connection string for `database` (superuser "warden", trust auth on loopback).
  [[nodiscard]] std::string conninfo(const std::string& database = "postgres") const;
  /// Creates a fresh database; returns its conninfo. Throws std::runtime_error on failure.
  std::string create_database(const std::string& name);
  [[nodiscard]] int port() const { return port_; }

 private:
  Postgres() = default;
  std::unique_ptr<TempDir> dir_;
  std::filesystem::path bin_;
  std::vector<std::string> as_user_;  // prefix that drops to the postgres user, or empty
  int port_ = 0;
  bool running_ = false;
};

}  // namespace warden::test
