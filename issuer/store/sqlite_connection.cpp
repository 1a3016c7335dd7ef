#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <string>
#include <string_view>
#include <unistd.h>
#include <unordered_map>

#include <sqlite3.h>

#include "issuer/store/sql.h"

namespace warden::issuer::sql {
namespace {

class SqliteConnection final : public Connection {
 public:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  ~SqliteConnection() override {
    for (auto& [text, stmt] : cache_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  [[nodiscard]] Dialect dialect() const override { return Dialect::kSqlite; }

  Result<Rows> exec(std::string_view sql, std::span<const Value> params) override {
    // Statements are prepared once per connection and reused (the store's SQL texts are a
    // small fixed set): preparing costs more than running most of them.
    sqlite3_stmt* raw = nullptr;
    auto cached = cache_.find(sql);
    if (cached != cache_.end()) {
      raw = cached->second;
    } else {
      if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &raw, nullptr) != SQLITE_OK) {
        return error("prepare");
      }
      if (cache_.size() >= kMaxCached) {
        for (auto& [text, stmt] : cache_) sqlite3_finalize(stmt);
        cache_.clear();
      }
      cache_.emplace(std::string(sql), raw);
    }
    struct Reset {
      sqlite3_stmt* s;
      ~Reset() {
        sqlite3_reset(s);
        sqlite3_clear_bindings(s);
      }
    } reset{raw};
    // SQLITE_STATIC: `params` outlives every step, and the bindings are cleared before return.
    for (std::size_t i = 0; i < params.size(); ++i) {
      int idx = static_cast<int>(i + 1);
      int rc = SQLITE_OK;
      const Value& v = params[i];
      if (const auto* n = std::get_if<std::int64_t>(&v)) {
        rc = sqlite3_bind_int64(raw, idx, *n);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        rc = sqlite3_bind_text64(raw, idx, s->data(), s->size(), SQLITE_STATIC, SQLITE_UTF8);
      } else if (const auto* b = std::get_if<Bytes>(&v)) {
        rc = sqlite3_bind_blob64(raw, idx, b->data(), b->size(), SQLITE_STATIC);
      } else {
        rc = sqlite3_bind_null(raw, idx);
      }
      if (rc != SQLITE_OK) return error("bind");
    }
    Rows rows;
    for (;;) {
      int rc = sqlite3_step(raw);
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) return error("step");
      int n = sqlite3_column_count(raw);
      Row row;
      row.reserve(static_cast<std::size_t>(n));
      for (int c = 0; c < n; ++c) {
        switch (sqlite3_column_type(raw, c)) {
          case SQLITE_INTEGER:
            row.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(raw, c)));
            break;
          case SQLITE_TEXT: {
            const auto* p = sqlite3_column_text(raw, c);
            auto len = static_cast<std::size_t>(sqlite3_column_bytes(raw, c));
            row.emplace_back(std::string(reinterpret_cast<const char*>(p), len));  // NOLINT
            break;
          }
          case SQLITE_BLOB: {
            const auto* p = static_cast<const std::uint8_t*>(sqlite3_column_blob(raw, c));
            auto len = static_cast<std::size_t>(sqlite3_column_bytes(raw, c));
            Bytes b;
            b.reserve(len);
            if (p != nullptr) b.insert(b.end(), p, p + len);
            row.emplace_back(std::move(b));
            break;
          }
          case SQLITE_NULL:
            row.emplace_back(std::monostate{});
            break;
          default:
            row.emplace_back(static_cast<std::int64_t>(sqlite3_column_double(raw, c)));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  Status exec_script(std::string_view sql) override {
    std::string text(sql);
    char* msg = nullptr;
    if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &msg) != SQLITE_OK) {
      std::string m = msg != nullptr ? msg : "unknown";
      sqlite3_free(msg);
      return fail(ErrorCode::kIo, "sqlite: script: " + m);
    }
    return ok();
  }

 private:
  tl::unexpected<Error> error(std::string_view op) {
    int code = sqlite3_extended_errcode(db_);
    std::string msg = "sqlite: " + std::string(op) + ": " + sqlite3_errmsg(db_);
    if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return fail(ErrorCode::kConflict, msg);
    }
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) {
      return fail(ErrorCode::kUnavailable, msg);
    }
    return fail(ErrorCode::kIo, msg);
  }

  // Looked up by the statement's text without copying it into a key.
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
      return std::hash<std::string_view>{}(text);
    }
  };

  static constexpr std::size_t kMaxCached = 128;
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*, TextHash, std::equal_to<>> cache_;
};

// The database holds device records, pending enrollments and the audit log: owner only,
// whatever the umask. SQLite creates -wal and -shm with the mode of the database file (and
// fchmods them when the umask got in the way), so creating the database 0600 here decides all
// three; files left by an older issuer are tightened.
Status restrict_to_owner(const std::string& path) {
  if (path.empty() || path == ":memory:") return ok();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    const bool main = suffix[0] == '\0';
    const int fd = ::open(file.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW | (main ? O_CREAT : 0),
                          S_IRUSR | S_IWUSR);
    if (fd < 0) {
      if (!main && errno == ENOENT) continue;
      return fail(ErrorCode::kIo, "sqlite: open " + file + ": " + std::strerror(errno));
    }
    const int rc = ::fchmod(fd, S_IRUSR | S_IWUSR);
    const int saved = errno;
    ::close(fd);
    if (rc != 0) {
      return fail(ErrorCode::kIo, "sqlite: chmod 0600 " + file + ": " + std::strerror(saved));
    }
  }
  return ok();
}

}  // namespace

Result<std::unique_ptr<Connection>> connect_sqlite(const std::string& path) {
  WARDEN_TRY_STATUS(restrict_to_owner(path));
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return fail(ErrorCode::kIo, "sqlite: open " + path + ": " + msg);
  }
  auto conn = std::make_unique<SqliteConnection>(db);
  sqlite3_busy_timeout(db, 5000);
  WARDEN_TRY_STATUS(conn->exec_script(
      "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"));
  return std::unique_ptr<Connection>(std::move(conn));
}

}  // namespace warden::issuer::sql
