#include <cstring>

#include <libpq-fe.h>

#include "issuer/store/sql.h"
#include "platform/base/encoding.h"

namespace warden::issuer::sql {
namespace {

// Type OIDs from pg_type.h (stable).
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;

/// Rewrites ?N placeholders to $N (outside string literals).
std::string to_pg_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  bool quoted = false;
  for (char c : sql) {
    if (c == '\'') quoted = !quoted;
    out.push_back(!quoted && c == '?' ? '$' : c);
  }
  return out;
}

class PostgresConnection final : public Connection {
 public:
  explicit PostgresConnection(PGconn* conn) : conn_(conn) {}
  ~PostgresConnection() override { PQfinish(conn_); }
  PostgresConnection(const PostgresConnection&) = delete;
  PostgresConnection& operator=(const PostgresConnection&) = delete;

  [[nodiscard]] Dialect dialect() const override { return Dialect::kPostgres; }

  Result<Rows> exec(std::string_view sql, std::span<const Value> params) override {
    std::string text = to_pg_placeholders(sql);
    std::vector<std::string> storage(params.size());
    std::vector<const char*> values(params.size());
    std::vector<int> lengths(params.size());
    std::vector<int> formats(params.size());
    for (std::size_t i = 0; i < params.size(); ++i) {
      const Value& v = params[i];
      if (const auto* n = std::get_if<std::int64_t>(&v)) {
        storage[i] = std::to_string(*n);
      } else if (const auto* s = std::get_if<std::string>(&v)) {
        storage[i] = *s;
      } else if (const auto* b = std::get_if<Bytes>(&v)) {
        storage[i].assign(b->begin(), b->end());
        formats[i] = 1;
      } else {
        values[i] = nullptr;
        continue;
      }
      values[i] = storage[i].data();
      lengths[i] = static_cast<int>(storage[i].size());
    }
    std::unique_ptr<PGresult, decltype(&PQclear)> res(
        PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                     lengths.data(), formats.data(), 0),
        PQclear);
    auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return error(res.get());
    Rows rows;
    int nrows = PQntuples(res.get());
    int ncols = PQnfields(res.get());
    rows.reserve(static_cast<std::size_t>(nrows));
    for (int r = 0; r < nrows; ++r) {
      Row row;
      row.reserve(static_cast<std::size_t>(ncols));
      for (int c = 0; c < ncols; ++c) {
        if (PQgetisnull(res.get(), r, c) != 0) {
          row.emplace_back(std::monostate{});
          continue;
        }
        std::string_view cell(PQgetvalue(res.get(), r, c),
                              static_cast<std::size_t>(PQgetlength(res.get(), r, c)));
        Oid type = PQftype(res.get(), c);
        if (type == kInt8Oid || type == kInt4Oid || type == kInt2Oid) {
          row.emplace_back(static_cast<std::int64_t>(std::stoll(std::string(cell))));
        } else if (type == kBoolOid) {
          row.emplace_back(static_cast<std::int64_t>(cell == "t" ? 1 : 0));
        } else if (type == kByteaOid) {
          // Text output of bytea is "\x" + hex.
          if (cell.size() < 2 || cell.substr(0, 2) != "\\x") {
            return fail(ErrorCode::kIo, "postgres: bytea column not in hex format");
          }
          auto bytes = hex_decode(cell.substr(2));
          if (!bytes) return fail(std::move(bytes).error());
          row.emplace_back(std::move(*bytes));
        } else {
          row.emplace_back(std::string(cell));
        }
      }
      rows.push_back(std::move(row));
    }
    return rows;
  }

  Status exec_script(std::string_view sql) override {
    std::string text(sql);
    std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn_, text.c_str()), PQclear);
    auto status = PQresultStatus(res.get());
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) return error(res.get());
    return ok();
  }

 private:
  tl::unexpected<Error> error(const PGresult* res) {
    std::string msg = "postgres: ";
    msg += res != nullptr ? PQresultErrorMessage(res) : PQerrorMessage(conn_);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    if (PQstatus(conn_) != CONNECTION_OK) return fail(ErrorCode::kUnavailable, msg);
    const char* state = res != nullptr ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
    if (state != nullptr && std::strcmp(state, "23505") == 0) {
      return fail(ErrorCode::kConflict, msg);
    }
    if (state != nullptr &&
        (std::strcmp(state, "40001") == 0 || std::strcmp(state, "40P01") == 0)) {
      return fail(ErrorCode::kUnavailable, msg);
    }
    return fail(ErrorCode::kIo, msg);
  }

  PGconn* conn_;
};

}  // namespace

Result<std::unique_ptr<Connection>> connect_postgres(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (conn == nullptr || PQstatus(conn) != CONNECTION_OK) {
    std::string msg = conn != nullptr ? PQerrorMessage(conn) : "out of memory";
    PQfinish(conn);
    while (!msg.empty() && msg.back() == '\n') msg.pop_back();
    return fail(ErrorCode::kUnavailable, "postgres: connect: " + msg);
  }
  auto c = std::make_unique<PostgresConnection>(conn);
  WARDEN_TRY_STATUS(c->exec_script("SET client_min_messages = warning"));
  return std::unique_ptr<Connection>(std::move(c));
}

}  // namespace warden::issuer::sql
