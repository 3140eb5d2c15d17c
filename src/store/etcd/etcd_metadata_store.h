// EtcdMetadataStore: the fleet's MetadataStore, in etcd v3 under a key
// prefix (docs/fleet.md lists the layout). It passes the same conformance
// suite as SqliteMetadataStore.
//
// - Every change is one etcd transaction, read-compare-write: the records
//   it read are compared (mod revision) when it commits, and it starts over
//   when another node wrote them first. A deployment with its alias move,
//   a build finishing with its alias move, an app with all it holds: one
//   transaction each.
// - Watchers hear this node's changes on the thread that made them, when
//   the write returns, and every other node's from one delivery thread, fed
//   by one watch thread which
//   follows the prefix from the revision read at open and resumes from the
//   last revision it saw after a disconnect. When etcd compacted that
//   revision away it sends kResync and follows on from the newest. A change
//   is announced once: the watch thread skips the revisions this node wrote
//   and announced itself.
// - The data plane never reads through this class on a request: the router
//   keeps its own table, reloaded (on the delivery thread) when a change
//   comes.
// - Leases and their expiry follow the store's Clock, as in SQLite; records
//   for coordination (compareAndSwap) use etcd's own key versions.
// - etcd caps a transaction's operations (--max-txn-ops, 128 by default):
//   removing an app deletes its deployments' id index afterwards, in
//   batches, and re-sealing secrets writes in batches (a crash between them
//   leaves every value readable: the secret box opens either key while a
//   rotation runs, and the next start finishes it).
//
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>
#include <thread>

#include "common/clock.h"
#include "common/watchers.h"
#include "store/etcd/etcd_client.h"
#include "store/metadata_store.h"

namespace nubo::store {

struct EtcdStoreOptions {
  std::string prefix = "/nubo/";  // every key lives under it; ends with '/'
  size_t audit_kept = MetadataStore::kAuditKept;
};

class EtcdMetadataStore final : public MetadataStore {
 public:
  // Reads the current revision and starts following changes from it.
  static Result<std::unique_ptr<EtcdMetadataStore>> open(std::shared_ptr<etcd::EtcdClient> etcd, Clock& clock,
                                                         EtcdStoreOptions options = {});
  ~EtcdMetadataStore() override;  // stops the watch and delivery threads

  Status createDeployment(const Deployment& d, std::string_view promote_alias, std::string_view actor) override;
  Status setDeploymentState(std::string_view id, DeploymentState state) override;
  Status finishBuild(std::string_view id, DeploymentState state, std::string_view output_tree,
                     std::string_view error, std::string_view actor) override;
  Result<Deployment> getDeployment(std::string_view id) override;
  Result<std::vector<Deployment>> listDeployments(std::string_view app, size_t limit) override;
  Result<std::vector<Deployment>> listUnbuilt() override;
  Result<App> getApp(std::string_view name) override;
  Result<std::vector<App>> listApps() override;
  Status deleteApp(std::string_view name) override;
  Result<AliasEvent> setAlias(std::string_view app, std::string_view alias, std::string_view deployment_id,
                              std::string_view actor) override;
  Result<AliasEvent> setAliasSplit(std::string_view app, std::string_view alias, const Split& split,
                                   std::string_view actor) override;
  Result<AliasEvent> rollbackAlias(std::string_view app, std::string_view alias, std::string_view actor) override;
  Result<std::vector<Alias>> listAliases(std::string_view app) override;
  Result<std::vector<AliasEvent>> aliasHistory(std::string_view app, std::string_view alias, size_t limit) override;
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

  // Stops following other nodes' changes (no watcher is called after it
  // returns). Idempotent; the destructor does it too.
  void stopFollowing();

  // True once the watch is following etcd (and again after a resync has
  // been announced): until then this node may not know the newest routes.
  bool synced() const { return synced_.load(); }
  const std::string& prefix() const { return prefix_; }
  etcd::EtcdClient& client() { return *etcd_; }

 private:
  EtcdMetadataStore(std::shared_ptr<etcd::EtcdClient> etcd, Clock& clock, EtcdStoreOptions options);

  // A transaction whose changes this node announces itself: its revision
  // is noted before the watch thread may look at it.
  Result<etcd::TxnResult> write(const std::vector<etcd::Compare>& compares, const std::vector<etcd::TxnOp>& ops,
                                const std::vector<etcd::TxnOp>& failure = {});
  void announce(std::vector<Change> changes, int64_t revision);
  // The watch thread reads the stream; the delivery thread tells the
  // watchers, in order.
  struct Batch {
    enum class Kind { kEvents, kResync, kFollowing };
    Kind kind = Kind::kEvents;
    std::vector<etcd::WatchEvent> events;
    int64_t revision = 0;  // kResync: the revision reloaded at
  };
  void follow(int64_t from);  // the watch thread
  void enqueue(Batch b);
  void deliverQueued();       // the delivery thread
  void deliver(const std::vector<etcd::WatchEvent>& events);
  // Stops until `ms` passed or the store closes; false when it closed.
  bool pause(int ms);
  Result<Deployment> readDeployment(std::string_view id, int64_t* mod_revision = nullptr,
                                    std::string* key = nullptr);

  const std::shared_ptr<etcd::EtcdClient> etcd_;
  Clock& clock_;
  const std::string prefix_;
  const size_t audit_kept_;

  std::shared_mutex writes_mu_;  // shared by writes in flight; the watch thread takes it alone
  std::mutex local_mu_;
  std::set<int64_t> local_;  // guarded by local_mu_: revisions announced here, not yet seen by the watch
  std::atomic<int64_t> revision_{0};
  std::atomic<bool> synced_{false};
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  Watchers<Watcher> watchers_;
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Batch> queue_;  // guarded by queue_mu_
  std::thread follower_, deliverer_;
};

}  // namespace nubo::store
