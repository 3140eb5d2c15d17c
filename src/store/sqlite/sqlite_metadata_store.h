// SqliteMetadataStore: the single-node MetadataStore, one SQLite database in
// WAL mode with synchronous=FULL, so a committed write survives kill -9 and
// power loss. One connection guarded by a mutex: the control plane is not
// hot, and the data plane never reads SQLite on the request path (the router
// keeps its own snapshot, refreshed by watch()).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/clock.h"
#include "common/watchers.h"
#include "store/metadata_store.h"

struct sqlite3;

namespace nubo::store {

class SqliteMetadataStore final : public MetadataStore {
 public:
  // Opens or creates the database at `path` (":memory:" for tests) and
  // migrates its schema.
  // `audit_kept`: how many of the newest audit entries are kept.
  static Result<std::unique_ptr<SqliteMetadataStore>> open(const std::string& path, Clock& clock,
                                                           size_t audit_kept = kAuditKept);
  ~SqliteMetadataStore() override;

  Status createDeployment(const Deployment& d, std::string_view promote_alias,
                          std::string_view actor) override;
  Status setDeploymentState(std::string_view id, DeploymentState state) override;
  Status finishBuild(std::string_view id, DeploymentState state, std::string_view output_tree,
                     std::string_view error, std::string_view actor) override;
  Result<Deployment> getDeployment(std::string_view id) override;
  Result<std::vector<Deployment>> listDeployments(std::string_view app, size_t limit) override;
  Result<std::vector<Deployment>> listUnbuilt() override;
  Result<App> getApp(std::string_view name) override;
  Result<std::vector<App>> listApps() override;
  Status deleteApp(std::string_view name) override;
  Result<AliasEvent> setAliasSplit(std::string_view app, std::string_view alias, const Split& split,
                                   std::string_view actor) override;
  Result<AliasEvent> setAlias(std::string_view app, std::string_view alias,
                              std::string_view deployment_id, std::string_view actor) override;
  Result<AliasEvent> rollbackAlias(std::string_view app, std::string_view alias,
                                   std::string_view actor) override;
  Result<std::vector<Alias>> listAliases(std::string_view app) override;
  Result<std::vector<AliasEvent>> aliasHistory(std::string_view app, std::string_view alias,
                                               size_t limit) override;
  Status putToken(const TokenRecord& t) override;
  Result<TokenRecord> findTokenByHash(std::string_view hash) override;
  Result<size_t> countTokens() override;
  Result<std::vector<TokenRecord>> listTokens() override;
  Status deleteToken(std::string_view name) override;
  Status touchToken(std::string_view id, int64_t used_ms) override;
  Status putDomain(const Domain& d) override;
  Result<std::string> deleteDomain(std::string_view host) override;
  Result<std::vector<Domain>> listDomains(std::string_view app) override;
  Status putEnv(const std::vector<EnvVar>& vars) override;
  Status deleteEnv(std::string_view app, std::string_view alias, std::string_view name) override;
  Result<std::vector<EnvVar>> listEnv(std::string_view app) override;
  Result<size_t> resealSecrets(const Reseal& reseal) override;
  Result<AuditEntry> appendAudit(const AuditEntry& e) override;
  Result<std::vector<AuditEntry>> listAudit(const AuditQuery& q) override;
  uint64_t revision() override;
  Result<std::optional<KeyValue>> getKey(std::string_view key) override;
  Result<uint64_t> compareAndSwap(std::string_view key, uint64_t expected_version, std::string_view value) override;
  Result<Lease> acquireLease(std::string_view name, std::string_view holder, std::chrono::milliseconds ttl) override;
  Status releaseLease(std::string_view name, std::string_view holder) override;
  uint64_t watch(Watcher w) override;
  void unwatch(uint64_t id) override;

  // Tells every watcher to reload everything (kResync): for when the
  // database was written by someone else (another process, a restore).
  void announceResync();

 private:
  SqliteMetadataStore(sqlite3* db, Clock& clock, size_t audit_kept)
      : db_(db), clock_(clock), audit_kept_(audit_kept) {}
  Status migrate();
  Status createSchemaV1();
  Status exec(const char* sql);
  // Both require mu_ held.
  // Moves app/alias to `split` (validated), recording the move.
  Result<AliasEvent> moveAliasLocked(std::string_view app, std::string_view alias, const Split& split,
                                     std::string_view kind, std::string_view actor);
  // Checks every deployment of `split` is a READY one of `app`.
  Status checkSplitLocked(std::string_view app, const Split& split);
  Result<Deployment> getDeploymentLocked(std::string_view id);
  void notify(const Change& c);

  std::mutex mu_;
  sqlite3* db_;  // guarded by mu_
  Clock& clock_;
  const size_t audit_kept_;
  uint64_t revision_ = 0;  // guarded by mu_: counts the changes committed since open

  Watchers<Watcher> watchers_;
};

}  // namespace nubo::store
