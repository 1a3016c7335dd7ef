#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "platform/base/bytes.h"
#include "platform/base/error.h"

namespace warden::issuer::sql {

/// A parameter or column value. Placeholders in SQL text are written ?1, ?2, ... for both
/// backends (the PostgreSQL connection rewrites them to $1, $2, ...).
using Value = std::variant<std::monostate, std::int64_t, std::string, Bytes>;
using Row = std::vector<Value>;
using Rows = std::vector<Row>;

enum class Dialect { kSqlite, kPostgres };

/// One database connection; used by one thread at a time (the pool guarantees it).
class Connection {
 public:
  virtual ~Connection() = default;
  [[nodiscard]] virtual Dialect dialect() const = 0;
  /// Runs one statement. kConflict on a unique-constraint violation, kUnavailable when the
  /// server cannot be reached, kIo otherwise.
  virtual Result<Rows> exec(std::string_view sql, std::span<const Value> params) = 0;
  /// Runs several statements without parameters (schema migrations).
  virtual Status exec_script(std::string_view sql) = 0;
};

std::int64_t as_int(const Value& v);
std::string as_text(const Value& v);
Bytes as_bytes(const Value& v);
bool is_null(const Value& v);

/// A fixed-size pool: connections are made lazily by `factory` and handed to one caller at a time.
class Pool {
 public:
  using Factory = std::function<Result<std::unique_ptr<Connection>>()>;
  Pool(Factory factory, std::size_t size) : factory_(std::move(factory)), size_(size) {}

  class Lease {
   public:
    Lease(Pool* pool, std::unique_ptr<Connection> conn) : pool_(pool), conn_(std::move(conn)) {}
    ~Lease();
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Connection* operator->() const { return conn_.get(); }
    Connection& operator*() const { return *conn_; }
    /// Drops the connection instead of returning it (after a connection-level failure).
    void discard() { conn_.reset(); }

   private:
    Pool* pool_;
    std::unique_ptr<Connection> conn_;
  };

  Result<Lease> acquire();

 private:
  void release(std::unique_ptr<Connection> conn);

  Factory factory_;
  std::size_t size_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;
  std::size_t open_ = 0;
};

Result<std::unique_ptr<Connection>> connect_sqlite(const std::string& path);
Result<std::unique_ptr<Connection>> connect_postgres(const std::string& conninfo);

}  // namespace warden::issuer::sql
