#include "store/sqlite/sqlite_metadata_store.h"

#include <sqlite3.h>

#include "common/json.h"

#include <algorithm>
#include <array>
#include <limits>
#include <vector>

namespace nubo::store {
namespace {

Status sqliteError(sqlite3* db, std::string_view what) {
  int code = sqlite3_extended_errcode(db);
  std::string msg = std::string(what) + ": " + sqlite3_errmsg(db);
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED) return Unavailable(msg);
  if ((code & 0xff) == SQLITE_FULL) return ResourceExhausted(msg);
  return Internal(msg);
}

// A prepared statement; finalized on destruction.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Status prepared() const {
    return rc_ == SQLITE_OK ? Status::Ok() : sqliteError(db_, "prepare");
  }
  Stmt& bind(int i, std::string_view s) {
    sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false, error -> status.
  Result<bool> step() {
    if (rc_ != SQLITE_OK) return sqliteError(db_, "prepare");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqliteError(db_, "step");
  }
  Status run() {
    auto r = step();
    return r.ok() ? Status::Ok() : r.status();
  }
  std::string text(int col) const {
    const unsigned char* t = sqlite3_column_text(stmt_, col);
    return t ? std::string(reinterpret_cast<const char*>(t), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back unless commit() succeeded.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {}
  Status begin() {
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) {
      return sqliteError(db_, "begin");
    }
    open_ = true;
    return Status::Ok();
  }
  Status commit() {
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return sqliteError(db_, "commit");
    open_ = false;
    return Status::Ok();
  }
  ~Txn() {
    if (open_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

constexpr const char* kDeploymentCols =
    "id, app, root_tree, manifest, runtime, state, created_ms, creator, files, bytes, output_tree, promote_alias, "
    "error, build_attempts, env";

// A deployment's env snapshot as a column: [{"n": name, "v": value, "s": secret}].
std::string encodeEnv(const std::vector<EnvValue>& env) {
  if (env.empty()) return "";
  Json list = Json::array();
  for (const auto& e : env) list.push_back({{"n", e.name}, {"v", e.value}, {"s", e.secret}});
  return dumpJson(list);
}

std::vector<EnvValue> decodeEnv(std::string_view text) {
  std::vector<EnvValue> out;
  if (text.empty()) return out;
  auto list = parseJson(text, "env");
  if (!list.ok() || !list->is_array()) return out;
  for (const auto& e : *list) {
    out.push_back({e.value("n", std::string()), e.value("v", std::string()), e.value("s", false)});
  }
  return out;
}

Deployment readDeployment(const Stmt& s) {
  Deployment d;
  d.id = s.text(0);
  d.app = s.text(1);
  d.root_tree = s.text(2);
  d.manifest_json = s.text(3);
  d.runtime = s.text(4);
  d.state = stateFromName(s.text(5)).value_or(DeploymentState::kFailed);
  d.created_ms = s.integer(6);
  d.creator = s.text(7);
  d.files = static_cast<uint64_t>(s.integer(8));
  d.bytes = static_cast<uint64_t>(s.integer(9));
  d.output_tree = s.text(10);
  d.promote_alias = s.text(11);
  d.error = s.text(12);
  d.build_attempts = static_cast<int>(s.integer(13));
  d.env = decodeEnv(s.text(14));
  return d;
}

// Every row `s` yields.
Result<std::vector<Deployment>> readDeployments(Stmt& s) {
  std::vector<Deployment> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(readDeployment(s));
  }
  return out;
}

constexpr const char* kEventCols =
    "seq, app, alias, deployment_id, previous_id, kind, actor, at_ms, undone, split, previous_split";

// A split as stored: "d1=90,d2=10", or "" for `id` alone at 100 (nothing
// when `id` is empty).
std::string encodeSplit(const Split& split) {
  return split.size() == 1 && split[0].weight == 100 ? std::string() : splitText(split);
}

Split decodeSplit(std::string_view text, std::string_view id) {
  Split out;
  if (text.empty()) {
    if (!id.empty()) out.push_back({std::string(id), 100});
    return out;
  }
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view part = text.substr(0, comma);
    size_t eq = part.find('=');
    int weight = 0;
    for (char c : part.substr(eq + 1)) weight = weight * 10 + (c - '0');
    out.push_back({std::string(part.substr(0, eq)), weight});
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  return out;
}

AliasEvent readEvent(const Stmt& s) {
  AliasEvent e;
  e.seq = s.integer(0);
  e.app = s.text(1);
  e.alias = s.text(2);
  e.deployment_id = s.text(3);
  e.previous_id = s.text(4);
  e.kind = s.text(5);
  e.actor = s.text(6);
  e.at_ms = s.integer(7);
  e.undone = s.integer(8) != 0;
  e.split = decodeSplit(s.text(9), e.deployment_id);
  e.previous_split = decodeSplit(s.text(10), e.previous_id);
  return e;
}

// App names (which have no commas) as one column.
std::string joinNames(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
  return out;
}

std::vector<std::string> splitNames(std::string_view s) {
  std::vector<std::string> out;
  while (!s.empty()) {
    size_t comma = s.find(',');
    out.emplace_back(s.substr(0, comma));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<SqliteMetadataStore>> SqliteMetadataStore::open(const std::string& path, Clock& clock,
                                                                       size_t audit_kept) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Internal("open metadata database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  std::unique_ptr<SqliteMetadataStore> store(new SqliteMetadataStore(db, clock, std::max<size_t>(audit_kept, 1)));
  RETURN_IF_ERROR(store->migrate());
  return store;
}

SqliteMetadataStore::~SqliteMetadataStore() { sqlite3_close(db_); }

Status SqliteMetadataStore::exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return Internal(std::string("metadata database: ") + msg);
  }
  return Status::Ok();
}

Status SqliteMetadataStore::migrate() {
  std::lock_guard lock(mu_);
  RETURN_IF_ERROR(exec("PRAGMA journal_mode=WAL"));
  RETURN_IF_ERROR(exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(exec("PRAGMA foreign_keys=ON"));
  Stmt v(db_, "PRAGMA user_version");
  ASSIGN_OR_RETURN(bool row, v.step());
  int64_t version = row ? v.integer(0) : 0;
  if (version > 8) {
    return FailedPrecondition("metadata database schema version " + std::to_string(version) +
                              " is newer than this nubo understands (8); upgrade nubo");
  }
  if (version == 0) RETURN_IF_ERROR(createSchemaV1());
  if (version <= 1) {
    // v2: builds (what a build made, the alias it moves, why it failed).
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      ALTER TABLE deployments ADD COLUMN output_tree TEXT NOT NULL DEFAULT '';
      ALTER TABLE deployments ADD COLUMN promote_alias TEXT NOT NULL DEFAULT '';
      ALTER TABLE deployments ADD COLUMN error TEXT NOT NULL DEFAULT '';
      PRAGMA user_version = 2;
      COMMIT;
    )sql"));
  }
  if (version <= 2) {
    // v3: how many times a build started, so that one that keeps being
    // interrupted (it crashes the server, say) is not retried forever.
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      ALTER TABLE deployments ADD COLUMN build_attempts INTEGER NOT NULL DEFAULT 0;
      PRAGMA user_version = 3;
      COMMIT;
    )sql"));
  }
  if (version <= 3) {
    // v4: coordination records and leases (builds and cron across nodes).
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL, version INTEGER NOT NULL);
      CREATE TABLE leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_ms INTEGER NOT NULL,
                           epoch INTEGER NOT NULL);
      PRAGMA user_version = 4;
      COMMIT;
    )sql"));
  }
  if (version <= 4) {
    // v5: tokens with roles, app scopes and expiry (the tokens made before
    // were admin tokens), unique names (revoked by name), the audit log.
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      ALTER TABLE tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'admin';
      ALTER TABLE tokens ADD COLUMN apps TEXT NOT NULL DEFAULT '';
      ALTER TABLE tokens ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE tokens ADD COLUMN last_used_ms INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE tokens ADD COLUMN created_by TEXT NOT NULL DEFAULT '';
      UPDATE tokens SET name = name || '-' || id
        WHERE rowid NOT IN (SELECT MIN(rowid) FROM tokens GROUP BY name);
      CREATE UNIQUE INDEX tokens_by_name ON tokens(name);
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        app TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL,
        source TEXT NOT NULL
      );
      CREATE INDEX audit_by_app ON audit(app, seq);
      PRAGMA user_version = 5;
      COMMIT;
    )sql"));
  }
  if (version <= 5) {
    // v6: custom domains.
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      CREATE TABLE domains (
        host TEXT PRIMARY KEY,
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        alias TEXT NOT NULL,
        created_ms INTEGER NOT NULL,
        created_by TEXT NOT NULL
      );
      CREATE INDEX domains_by_app ON domains(app);
      PRAGMA user_version = 6;
      COMMIT;
    )sql"));
  }
  if (version <= 6) {
    // v7: weighted traffic splits ("" : the one deployment_id at 100).
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      ALTER TABLE aliases ADD COLUMN split TEXT NOT NULL DEFAULT '';
      ALTER TABLE alias_events ADD COLUMN split TEXT NOT NULL DEFAULT '';
      ALTER TABLE alias_events ADD COLUMN previous_split TEXT NOT NULL DEFAULT '';
      PRAGMA user_version = 7;
      COMMIT;
    )sql"));
  }
  if (version <= 7) {
    // v8: env vars and secrets; each deployment's snapshot of them.
    RETURN_IF_ERROR(exec(R"sql(
      BEGIN IMMEDIATE;
      CREATE TABLE env (
        app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
        alias TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        secret INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        updated_by TEXT NOT NULL,
        PRIMARY KEY (app, alias, name)
      );
      ALTER TABLE deployments ADD COLUMN env TEXT NOT NULL DEFAULT '';
      PRAGMA user_version = 8;
      COMMIT;
    )sql"));
  }
  return Status::Ok();
}

Status SqliteMetadataStore::createSchemaV1() {
  return exec(R"sql(
    BEGIN IMMEDIATE;
    CREATE TABLE apps (
      name TEXT PRIMARY KEY,
      created_ms INTEGER NOT NULL,
      created_by TEXT NOT NULL
    );
    CREATE TABLE deployments (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
      root_tree TEXT NOT NULL,
      manifest TEXT NOT NULL,
      runtime TEXT NOT NULL,
      state TEXT NOT NULL,
      created_ms INTEGER NOT NULL,
      creator TEXT NOT NULL,
      files INTEGER NOT NULL,
      bytes INTEGER NOT NULL
    );
    CREATE INDEX deployments_by_app ON deployments(app, seq);
    CREATE TABLE aliases (
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
      name TEXT NOT NULL,
      deployment_id TEXT NOT NULL,
      updated_ms INTEGER NOT NULL,
      PRIMARY KEY (app, name)
    );
    CREATE TABLE alias_events (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      app TEXT NOT NULL REFERENCES apps(name) ON DELETE CASCADE,
      alias TEXT NOT NULL,
      deployment_id TEXT NOT NULL,
      previous_id TEXT NOT NULL,
      kind TEXT NOT NULL,
      actor TEXT NOT NULL,
      at_ms INTEGER NOT NULL,
      undone INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX alias_events_by_alias ON alias_events(app, alias, seq);
    CREATE TABLE tokens (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      hash TEXT NOT NULL UNIQUE,
      created_ms INTEGER NOT NULL
    );
    PRAGMA user_version = 1;
    COMMIT;
  )sql");
}

uint64_t SqliteMetadataStore::revision() {
  std::lock_guard lock(mu_);
  return revision_;
}

Result<std::optional<KeyValue>> SqliteMetadataStore::getKey(std::string_view key) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT value, version FROM kv WHERE key = ?");
  s.bind(1, key);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return std::optional<KeyValue>();
  return std::optional<KeyValue>(KeyValue{std::string(key), s.text(0), static_cast<uint64_t>(s.integer(1))});
}

Result<uint64_t> SqliteMetadataStore::compareAndSwap(std::string_view key, uint64_t expected_version,
                                                     std::string_view value) {
  if (key.empty() || key.size() > 512) return InvalidArgument("a record's key must have 1 to 512 bytes");
  std::lock_guard lock(mu_);
  Txn txn(db_);
  RETURN_IF_ERROR(txn.begin());
  Stmt q(db_, "SELECT version FROM kv WHERE key = ?");
  q.bind(1, key);
  ASSIGN_OR_RETURN(bool row, q.step());
  uint64_t current = row ? static_cast<uint64_t>(q.integer(0)) : 0;
  if (current != expected_version) {
    return FailedPrecondition("record " + std::string(key) + " is at version " + std::to_string(current) +
                              ", not " + std::to_string(expected_version) + ": another write came first");
  }
  Stmt w(db_, "INSERT INTO kv (key, value, version) VALUES (?, ?, ?) "
              "ON CONFLICT(key) DO UPDATE SET value = excluded.value, version = excluded.version");
  w.bind(1, key).bind(2, value).bind(3, static_cast<int64_t>(current + 1));
  RETURN_IF_ERROR(w.run());
  RETURN_IF_ERROR(txn.commit());
  ++revision_;
  return current + 1;
}

Result<Lease> SqliteMetadataStore::acquireLease(std::string_view name, std::string_view holder,
                                                std::chrono::milliseconds ttl) {
  if (name.empty() || holder.empty()) return InvalidArgument("a lease needs a name and a holder");
  if (ttl.count() <= 0) return InvalidArgument("a lease's time to live must be positive");
  std::lock_guard lock(mu_);
  int64_t now = clock_.nowMillis();
  Txn txn(db_);
  RETURN_IF_ERROR(txn.begin());
  Stmt q(db_, "SELECT holder, expires_ms, epoch FROM leases WHERE name = ?");
  q.bind(1, name);
  ASSIGN_OR_RETURN(bool row, q.step());
  Lease l{std::string(name), std::string(holder), now + ttl.count(), 1};
  if (row) {
    std::string current = q.text(0);
    int64_t expires = q.integer(1);
    uint64_t epoch = static_cast<uint64_t>(q.integer(2));
    if (current != holder && expires > now) {
      return FailedPrecondition("lease " + std::string(name) + " is held by " + current + " for " +
                                std::to_string(expires - now) + " ms more");
    }
    l.epoch = current == holder && expires > now ? epoch : epoch + 1;  // a new holding: a new epoch
  }
  Stmt w(db_, "INSERT INTO leases (name, holder, expires_ms, epoch) VALUES (?, ?, ?, ?) "
              "ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms, "
              "epoch = excluded.epoch");
  w.bind(1, name).bind(2, holder).bind(3, l.expires_ms).bind(4, static_cast<int64_t>(l.epoch));
  RETURN_IF_ERROR(w.run());
  RETURN_IF_ERROR(txn.commit());
  ++revision_;
  return l;
}

Status SqliteMetadataStore::releaseLease(std::string_view name, std::string_view holder) {
  std::lock_guard lock(mu_);
  int64_t now = clock_.nowMillis();
  // Released: expired now, the epoch kept (the next holder gets the next one).
  Stmt w(db_, "UPDATE leases SET expires_ms = ? WHERE name = ? AND holder = ? AND expires_ms > ?");
  w.bind(1, now).bind(2, name).bind(3, holder).bind(4, now);
  RETURN_IF_ERROR(w.run());
  if (sqlite3_changes(db_) == 0) {
    return FailedPrecondition(std::string(holder) + " does not hold lease " + std::string(name));
  }
  ++revision_;
  return Status::Ok();
}

void SqliteMetadataStore::announceResync() { notify({Change::Kind::kResync, "", revision()}); }

void SqliteMetadataStore::notify(const Change& c) { watchers_.notify(c); }

uint64_t SqliteMetadataStore::watch(Watcher w) { return watchers_.add(std::move(w)); }

void SqliteMetadataStore::unwatch(uint64_t id) { watchers_.remove(id); }

Result<Deployment> SqliteMetadataStore::getDeploymentLocked(std::string_view id) {
  Stmt s(db_, (std::string("SELECT ") + kDeploymentCols + " FROM deployments WHERE id = ?").c_str());
  s.bind(1, id);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return NotFound("deployment " + std::string(id) + " not found");
  return readDeployment(s);
}

Status SqliteMetadataStore::checkSplitLocked(std::string_view app, const Split& split) {
  RETURN_IF_ERROR(validateSplit(split));
  for (const auto& part : split) {
    ASSIGN_OR_RETURN(Deployment d, getDeploymentLocked(part.deployment_id));
    if (d.app != app) {
      return NotFound("deployment " + part.deployment_id + " does not belong to app " + std::string(app));
    }
    if (d.state != DeploymentState::kReady) {
      return FailedPrecondition("deployment " + d.id + " is " + std::string(stateName(d.state)) +
                                ", only READY deployments can be aliased");
    }
  }
  return Status::Ok();
}

Result<AliasEvent> SqliteMetadataStore::moveAliasLocked(std::string_view app, std::string_view alias,
                                                         const Split& split, std::string_view kind,
                                                         std::string_view actor) {
  ASSIGN_OR_RETURN(AliasEvent e, newAliasMove(app, alias, split, kind, actor, clock_.nowMillis()));
  {
    Stmt cur(db_, "SELECT deployment_id, split FROM aliases WHERE app = ? AND name = ?");
    cur.bind(1, app).bind(2, alias);
    ASSIGN_OR_RETURN(bool row, cur.step());
    if (row) {
      e.previous_id = cur.text(0);
      e.previous_split = decodeSplit(cur.text(1), e.previous_id);
    }
  }
  std::string encoded = encodeSplit(e.split);
  Stmt up(db_,
          "INSERT INTO aliases (app, name, deployment_id, updated_ms, split) VALUES (?, ?, ?, ?, ?) "
          "ON CONFLICT (app, name) DO UPDATE SET deployment_id = excluded.deployment_id, "
          "updated_ms = excluded.updated_ms, split = excluded.split");
  up.bind(1, app).bind(2, alias).bind(3, e.deployment_id).bind(4, e.at_ms).bind(5, encoded);
  RETURN_IF_ERROR(up.run());
  Stmt ev(db_,
          "INSERT INTO alias_events (app, alias, deployment_id, previous_id, kind, actor, at_ms, split, "
          "previous_split) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
  ev.bind(1, app).bind(2, alias).bind(3, e.deployment_id).bind(4, e.previous_id).bind(5, kind).bind(6, actor);
  ev.bind(7, e.at_ms).bind(8, encoded).bind(9, e.previous_split.empty() ? "" : encodeSplit(e.previous_split));
  RETURN_IF_ERROR(ev.run());
  e.seq = sqlite3_last_insert_rowid(db_);
  return e;
}

Status SqliteMetadataStore::createDeployment(const Deployment& d, std::string_view promote_alias,
                                             std::string_view actor) {
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt app(db_, "INSERT INTO apps (name, created_ms, created_by) VALUES (?, ?, ?) ON CONFLICT DO NOTHING");
    app.bind(1, d.app).bind(2, d.created_ms).bind(3, actor);
    RETURN_IF_ERROR(app.run());
    Stmt exists(db_, "SELECT 1 FROM deployments WHERE id = ?");
    exists.bind(1, d.id);
    ASSIGN_OR_RETURN(bool dup, exists.step());
    if (dup) return AlreadyExists("deployment " + d.id + " already exists");
    Stmt ins(db_,
             "INSERT INTO deployments (id, app, root_tree, manifest, runtime, state, created_ms, creator, "
             "files, bytes, output_tree, promote_alias, error, env) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    ins.bind(1, d.id).bind(2, d.app).bind(3, d.root_tree).bind(4, d.manifest_json).bind(5, d.runtime);
    ins.bind(6, stateName(d.state)).bind(7, d.created_ms).bind(8, d.creator);
    ins.bind(9, static_cast<int64_t>(d.files)).bind(10, static_cast<int64_t>(d.bytes));
    ins.bind(11, d.output_tree).bind(12, d.state == DeploymentState::kReady ? std::string() : std::string(promote_alias));
    ins.bind(13, d.error).bind(14, encodeEnv(d.env));
    RETURN_IF_ERROR(ins.run());
    if (!promote_alias.empty() && d.state == DeploymentState::kReady) {
      ASSIGN_OR_RETURN(AliasEvent ignored, moveAliasLocked(d.app, promote_alias, {{d.id, 100}}, "set", actor));
      (void)ignored;
    }
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kDeployment, d.app, rev});
  return Status::Ok();
}

Status SqliteMetadataStore::setDeploymentState(std::string_view id, DeploymentState state) {
  uint64_t rev = 0;
  std::string app;
  {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(Deployment d, getDeploymentLocked(id));
    app = d.app;
    Stmt s(db_, "UPDATE deployments SET state = ?, build_attempts = build_attempts + ? WHERE id = ?");
    s.bind(1, stateName(state)).bind(2, int64_t{state == DeploymentState::kBuilding ? 1 : 0}).bind(3, id);
    RETURN_IF_ERROR(s.run());
    rev = ++revision_;
  }
  notify({Change::Kind::kDeployment, app, rev});
  return Status::Ok();
}

Status SqliteMetadataStore::finishBuild(std::string_view id, DeploymentState state, std::string_view output_tree,
                                        std::string_view error, std::string_view actor) {
  uint64_t rev = 0;
  if (state != DeploymentState::kStarting && state != DeploymentState::kReady && state != DeploymentState::kFailed) {
    return InvalidArgument("a build ends STARTING, READY or FAILED");
  }
  std::string app;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    ASSIGN_OR_RETURN(Deployment d, getDeploymentLocked(id));
    if (d.state == DeploymentState::kReady || d.state == DeploymentState::kFailed) {
      return FailedPrecondition("deployment " + d.id + " is " + std::string(stateName(d.state)) + " already");
    }
    app = d.app;
    // STARTING keeps the alias to move once it is READY.
    Stmt s(db_, "UPDATE deployments SET state = ?, output_tree = CASE WHEN ? = '' THEN output_tree ELSE ? END, "
                "error = ?, promote_alias = CASE WHEN ? THEN promote_alias ELSE '' END WHERE id = ?");
    s.bind(1, stateName(state)).bind(2, output_tree).bind(3, output_tree).bind(4, error);
    s.bind(5, int64_t{state == DeploymentState::kStarting ? 1 : 0}).bind(6, id);
    RETURN_IF_ERROR(s.run());
    if (state == DeploymentState::kReady && !d.promote_alias.empty()) {
      ASSIGN_OR_RETURN(AliasEvent ignored, moveAliasLocked(d.app, d.promote_alias, {{d.id, 100}}, "set", actor));
      (void)ignored;
    }
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kDeployment, app, rev});
  notify({Change::Kind::kAlias, app, rev});
  return Status::Ok();
}

Result<Deployment> SqliteMetadataStore::getDeployment(std::string_view id) {
  std::lock_guard lock(mu_);
  return getDeploymentLocked(id);
}

Result<std::vector<Deployment>> SqliteMetadataStore::listDeployments(std::string_view app, size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kDeploymentCols +
               " FROM deployments WHERE app = ? ORDER BY seq DESC LIMIT ?")
                  .c_str());
  s.bind(1, app).bind(2, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
  return readDeployments(s);
}

Result<std::vector<Deployment>> SqliteMetadataStore::listUnbuilt() {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kDeploymentCols +
               " FROM deployments WHERE state IN ('QUEUED', 'BUILDING') ORDER BY seq")
                  .c_str());
  return readDeployments(s);
}

Result<App> SqliteMetadataStore::getApp(std::string_view name) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT name, created_ms, created_by FROM apps WHERE name = ?");
  s.bind(1, name);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return NotFound("app " + std::string(name) + " not found");
  return App{s.text(0), s.integer(1), s.text(2)};
}

Result<std::vector<App>> SqliteMetadataStore::listApps() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT name, created_ms, created_by FROM apps ORDER BY name");
  std::vector<App> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(App{s.text(0), s.integer(1), s.text(2)});
  }
  return out;
}

Status SqliteMetadataStore::deleteApp(std::string_view name) {
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt s(db_, "DELETE FROM apps WHERE name = ?");
    s.bind(1, name);
    RETURN_IF_ERROR(s.run());
    if (sqlite3_changes(db_) == 0) return NotFound("app " + std::string(name) + " not found");
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kApp, std::string(name), rev});
  return Status::Ok();
}

Result<AliasEvent> SqliteMetadataStore::setAlias(std::string_view app, std::string_view alias,
                                                 std::string_view deployment_id, std::string_view actor) {
  return setAliasSplit(app, alias, {{std::string(deployment_id), 100}}, actor);
}

Result<AliasEvent> SqliteMetadataStore::setAliasSplit(std::string_view app, std::string_view alias,
                                                      const Split& split, std::string_view actor) {
  uint64_t rev = 0;
  AliasEvent e;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    RETURN_IF_ERROR(checkSplitLocked(app, split));
    ASSIGN_OR_RETURN(e, moveAliasLocked(app, alias, split, "set", actor));
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kAlias, std::string(app), rev});
  return e;
}

Result<AliasEvent> SqliteMetadataStore::rollbackAlias(std::string_view app, std::string_view alias,
                                                      std::string_view actor) {
  uint64_t rev = 0;
  AliasEvent e;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt last(db_, (std::string("SELECT ") + kEventCols +
                    " FROM alias_events WHERE app = ? AND alias = ? AND kind = 'set' AND undone = 0 "
                    "ORDER BY seq DESC LIMIT 1")
                       .c_str());
    last.bind(1, app).bind(2, alias);
    ASSIGN_OR_RETURN(bool row, last.step());
    if (!row || last.text(4).empty()) {  // (previous_id: nowhere before)
      Stmt exists(db_, "SELECT 1 FROM aliases WHERE app = ? AND name = ?");
      exists.bind(1, app).bind(2, alias);
      ASSIGN_OR_RETURN(bool has_alias, exists.step());
      if (!has_alias) return NotFound("app " + std::string(app) + " has no alias " + std::string(alias));
      return FailedPrecondition("alias " + std::string(alias) + " of app " + std::string(app) +
                                " has no earlier deployment to roll back to");
    }
    AliasEvent undo = readEvent(last);
    Stmt mark(db_, "UPDATE alias_events SET undone = 1 WHERE seq = ?");
    mark.bind(1, undo.seq);
    RETURN_IF_ERROR(mark.run());
    ASSIGN_OR_RETURN(e, moveAliasLocked(app, alias, undo.previous_split, "rollback", actor));
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kAlias, std::string(app), rev});
  return e;
}

Result<std::vector<Alias>> SqliteMetadataStore::listAliases(std::string_view app) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT app, name, deployment_id, updated_ms, split FROM aliases WHERE app = ? ORDER BY name");
  s.bind(1, app);
  std::vector<Alias> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(Alias{s.text(0), s.text(1), s.text(2), s.integer(3), decodeSplit(s.text(4), s.text(2))});
  }
  return out;
}

Result<std::vector<AliasEvent>> SqliteMetadataStore::aliasHistory(std::string_view app, std::string_view alias,
                                                                  size_t limit) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kEventCols +
               " FROM alias_events WHERE app = ? AND alias = ? ORDER BY seq DESC LIMIT ?")
                  .c_str());
  s.bind(1, app).bind(2, alias).bind(3, limit == 0 ? int64_t{-1} : static_cast<int64_t>(limit));
  std::vector<AliasEvent> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(readEvent(s));
  }
  return out;
}

Status SqliteMetadataStore::putToken(const TokenRecord& t) {
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Stmt s(db_, "INSERT INTO tokens (id, name, hash, created_ms, role, apps, expires_ms, last_used_ms, created_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    s.bind(1, t.id).bind(2, t.name).bind(3, t.hash).bind(4, t.created_ms).bind(5, t.role);
    s.bind(6, joinNames(t.apps)).bind(7, t.expires_ms).bind(8, t.last_used_ms).bind(9, t.created_by);
    Status st = s.run();
    if (!st.ok() && (sqlite3_extended_errcode(db_) & 0xff) == SQLITE_CONSTRAINT) {
      return AlreadyExists("a token named " + t.name + " (or with its id or secret) already exists");
    }
    RETURN_IF_ERROR(st);
    rev = ++revision_;
  }
  notify({Change::Kind::kToken, "", rev});
  return Status::Ok();
}

namespace {
constexpr const char* kTokenCols = "id, name, hash, created_ms, role, apps, expires_ms, last_used_ms, created_by";

TokenRecord readToken(const Stmt& s) {
  TokenRecord t;
  t.id = s.text(0);
  t.name = s.text(1);
  t.hash = s.text(2);
  t.created_ms = s.integer(3);
  t.role = s.text(4);
  t.apps = splitNames(s.text(5));
  t.expires_ms = s.integer(6);
  t.last_used_ms = s.integer(7);
  t.created_by = s.text(8);
  return t;
}
}  // namespace

Result<TokenRecord> SqliteMetadataStore::findTokenByHash(std::string_view hash) {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kTokenCols + " FROM tokens WHERE hash = ?").c_str());
  s.bind(1, hash);
  ASSIGN_OR_RETURN(bool row, s.step());
  if (!row) return NotFound("no such token");
  return readToken(s);
}

Result<size_t> SqliteMetadataStore::countTokens() {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT COUNT(*) FROM tokens");
  ASSIGN_OR_RETURN(bool row, s.step());
  return row ? static_cast<size_t>(s.integer(0)) : 0;
}

Result<std::vector<TokenRecord>> SqliteMetadataStore::listTokens() {
  std::lock_guard lock(mu_);
  Stmt s(db_, (std::string("SELECT ") + kTokenCols + " FROM tokens ORDER BY name").c_str());
  std::vector<TokenRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(readToken(s));
  }
  return out;
}

Status SqliteMetadataStore::deleteToken(std::string_view name) {
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt q(db_, "SELECT role, (SELECT COUNT(*) FROM tokens WHERE role = 'admin') FROM tokens WHERE name = ?");
    q.bind(1, name);
    ASSIGN_OR_RETURN(bool row, q.step());
    if (!row) return NotFound("no token named " + std::string(name));
    if (q.text(0) == "admin" && q.integer(1) <= 1) {
      return FailedPrecondition("token " + std::string(name) +
                                " is the last admin token; create another admin token before revoking it");
    }
    Stmt d(db_, "DELETE FROM tokens WHERE name = ?");
    d.bind(1, name);
    RETURN_IF_ERROR(d.run());
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kToken, "", rev});
  return Status::Ok();
}

Status SqliteMetadataStore::touchToken(std::string_view id, int64_t used_ms) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "UPDATE tokens SET last_used_ms = MAX(last_used_ms, ?) WHERE id = ?");
  s.bind(1, used_ms).bind(2, id);
  return s.run();
}

Status SqliteMetadataStore::putDomain(const Domain& d) {
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt app(db_, "SELECT 1 FROM apps WHERE name = ?");
    app.bind(1, d.app);
    ASSIGN_OR_RETURN(bool exists, app.step());
    if (!exists) return NotFound("app " + d.app + " not found; deploy it before binding a domain to it");
    Stmt cur(db_, "SELECT app FROM domains WHERE host = ?");
    cur.bind(1, d.host);
    ASSIGN_OR_RETURN(bool bound, cur.step());
    if (bound && cur.text(0) != d.app) {
      return AlreadyExists("domain " + d.host + " is bound to app " + cur.text(0) +
                           "; remove it there first (nubo domains rm " + d.host + ")");
    }
    Stmt w(db_, "INSERT INTO domains (host, app, alias, created_ms, created_by) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(host) DO UPDATE SET alias = excluded.alias");
    w.bind(1, d.host).bind(2, d.app).bind(3, d.alias).bind(4, d.created_ms).bind(5, d.created_by);
    RETURN_IF_ERROR(w.run());
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kDomain, d.app, rev});
  return Status::Ok();
}

Result<std::string> SqliteMetadataStore::deleteDomain(std::string_view host) {
  uint64_t rev = 0;
  std::string app;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt cur(db_, "SELECT app FROM domains WHERE host = ?");
    cur.bind(1, host);
    ASSIGN_OR_RETURN(bool bound, cur.step());
    if (!bound) return NotFound("domain " + std::string(host) + " is not bound to any app");
    app = cur.text(0);
    Stmt d(db_, "DELETE FROM domains WHERE host = ?");
    d.bind(1, host);
    RETURN_IF_ERROR(d.run());
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kDomain, app, rev});
  return app;
}

Result<std::vector<Domain>> SqliteMetadataStore::listDomains(std::string_view app) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT host, app, alias, created_ms, created_by FROM domains WHERE ? = '' OR app = ? ORDER BY host");
  s.bind(1, app).bind(2, app);
  std::vector<Domain> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(Domain{s.text(0), s.text(1), s.text(2), s.integer(3), s.text(4)});
  }
  return out;
}

Status SqliteMetadataStore::putEnv(const std::vector<EnvVar>& vars) {
  if (vars.empty()) return Status::Ok();
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Txn txn(db_);
    RETURN_IF_ERROR(txn.begin());
    Stmt app(db_, "SELECT 1 FROM apps WHERE name = ?");
    app.bind(1, vars[0].app);
    ASSIGN_OR_RETURN(bool exists, app.step());
    if (!exists) return NotFound("app " + vars[0].app + " not found; deploy it before setting its env");
    for (const auto& v : vars) {
      if (v.app != vars[0].app) return InvalidArgument("env values set together belong to one app");
      Stmt w(db_, "INSERT INTO env (app, alias, name, value, secret, updated_ms, updated_by) "
                  "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app, alias, name) DO UPDATE SET "
                  "value = excluded.value, secret = excluded.secret, updated_ms = excluded.updated_ms, "
                  "updated_by = excluded.updated_by");
      w.bind(1, v.app).bind(2, v.alias).bind(3, v.name).bind(4, v.value).bind(5, int64_t{v.secret});
      w.bind(6, v.updated_ms).bind(7, v.updated_by);
      RETURN_IF_ERROR(w.run());
    }
    RETURN_IF_ERROR(txn.commit());
    rev = ++revision_;
  }
  notify({Change::Kind::kEnv, vars[0].app, rev});
  return Status::Ok();
}

Status SqliteMetadataStore::deleteEnv(std::string_view app, std::string_view alias, std::string_view name) {
  uint64_t rev = 0;
  {
    std::lock_guard lock(mu_);
    Stmt d(db_, "DELETE FROM env WHERE app = ? AND alias = ? AND name = ?");
    d.bind(1, app).bind(2, alias).bind(3, name);
    RETURN_IF_ERROR(d.run());
    if (sqlite3_changes(db_) == 0) {
      return NotFound("app " + std::string(app) + " has no env value " + std::string(name) +
                      (alias.empty() ? std::string() : " for alias " + std::string(alias)));
    }
    rev = ++revision_;
  }
  notify({Change::Kind::kEnv, std::string(app), rev});
  return Status::Ok();
}

Result<std::vector<EnvVar>> SqliteMetadataStore::listEnv(std::string_view app) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "SELECT app, alias, name, value, secret, updated_ms, updated_by FROM env WHERE app = ? "
              "ORDER BY alias, name");
  s.bind(1, app);
  std::vector<EnvVar> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(EnvVar{s.text(0), s.text(1), s.text(2), s.text(3), s.integer(4) != 0, s.integer(5), s.text(6)});
  }
  return out;
}

Result<size_t> SqliteMetadataStore::resealSecrets(const Reseal& reseal) {
  std::lock_guard lock(mu_);
  Txn txn(db_);
  RETURN_IF_ERROR(txn.begin());
  size_t count = 0;
  {
    std::vector<std::array<std::string, 4>> rows;  // app, alias, name, value
    Stmt s(db_, "SELECT app, alias, name, value FROM env WHERE secret = 1");
    for (;;) {
      ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      rows.push_back({s.text(0), s.text(1), s.text(2), s.text(3)});
    }
    for (const auto& [app, alias, name, value] : rows) {
      ASSIGN_OR_RETURN(std::string resealed, reseal(app, name, value));
      Stmt w(db_, "UPDATE env SET value = ? WHERE app = ? AND alias = ? AND name = ?");
      w.bind(1, resealed).bind(2, app).bind(3, alias).bind(4, name);
      RETURN_IF_ERROR(w.run());
      ++count;
    }
  }
  std::vector<std::array<std::string, 3>> deployments;  // id, app, env
  {
    Stmt s(db_, "SELECT id, app, env FROM deployments WHERE env != ''");
    for (;;) {
      ASSIGN_OR_RETURN(bool row, s.step());
      if (!row) break;
      deployments.push_back({s.text(0), s.text(1), s.text(2)});
    }
  }
  for (const auto& [id, app, text] : deployments) {
    std::vector<EnvValue> env = decodeEnv(text);
    bool changed = false;
    for (auto& e : env) {
      if (!e.secret) continue;
      ASSIGN_OR_RETURN(e.value, reseal(app, e.name, e.value));
      changed = true;
      ++count;
    }
    if (!changed) continue;
    Stmt w(db_, "UPDATE deployments SET env = ? WHERE id = ?");
    w.bind(1, encodeEnv(env)).bind(2, id);
    RETURN_IF_ERROR(w.run());
  }
  RETURN_IF_ERROR(txn.commit());
  ++revision_;
  return count;
}

Result<AuditEntry> SqliteMetadataStore::appendAudit(const AuditEntry& e) {
  std::lock_guard lock(mu_);
  Stmt s(db_, "INSERT INTO audit (at_ms, actor, action, app, target, detail, source) VALUES (?, ?, ?, ?, ?, ?, ?)");
  s.bind(1, e.at_ms).bind(2, e.actor).bind(3, e.action).bind(4, e.app).bind(5, e.target);
  s.bind(6, e.detail.empty() ? std::string_view("{}") : std::string_view(e.detail)).bind(7, e.source);
  RETURN_IF_ERROR(s.run());
  AuditEntry out = e;
  out.seq = sqlite3_last_insert_rowid(db_);
  if (out.seq % static_cast<int64_t>(std::max<size_t>(audit_kept_ / 100, 1)) == 0) {
    // Bounded: the newest audit_kept_ entries stay (trimmed now and then).
    Stmt trim(db_, "DELETE FROM audit WHERE seq <= ?");
    trim.bind(1, out.seq - static_cast<int64_t>(audit_kept_));
    RETURN_IF_ERROR(trim.run());
  }
  if (out.detail.empty()) out.detail = "{}";
  return out;
}

Result<std::vector<AuditEntry>> SqliteMetadataStore::listAudit(const AuditQuery& q) {
  std::lock_guard lock(mu_);
  std::string sql = "SELECT seq, at_ms, actor, action, app, target, detail, source FROM audit WHERE seq < ?";
  if (!q.apps.empty()) {
    sql += " AND app IN (";
    for (size_t i = 0; i < q.apps.size(); ++i) sql += i ? ", ?" : "?";
    sql += ")";
  }
  sql += " ORDER BY seq DESC LIMIT ?";
  Stmt s(db_, sql.c_str());
  int i = 1;
  s.bind(i++, q.before_seq > 0 ? q.before_seq : std::numeric_limits<int64_t>::max());
  for (const auto& app : q.apps) s.bind(i++, app);
  s.bind(i, q.limit == 0 ? int64_t{-1} : static_cast<int64_t>(q.limit));
  std::vector<AuditEntry> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.step());
    if (!row) break;
    out.push_back(AuditEntry{s.integer(0), s.integer(1), s.text(2), s.text(3), s.text(4), s.text(5), s.text(6),
                             s.text(7)});
  }
  return out;
}

}  // namespace nubo::store
