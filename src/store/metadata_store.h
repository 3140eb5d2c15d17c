// MetadataStore: apps, deployments, aliases (with history for rollback) and
// API tokens. SQLite (single node) implements it now, etcd (fleet) later;
// both must pass tests/metadata_store_conformance.h.
//
// Contract:
//   - Every write is atomic and durable when it returns OK: a crash (kill -9)
//     after that loses nothing; a crash before it leaves no trace.
//   - Deployments are immutable once created, except for their state.
//   - watch() callbacks run after a change is committed, on the thread that
//     made it (SQLite) or a watcher thread (etcd), never with a store lock
//     held, so they may read from the store. Each change carries the
//     store's revision after it (increasing in commit order; changes made
//     on several threads at once may be delivered in another order, so a
//     watcher compares revisions, not arrival). kResync says a watcher may
//     have missed changes (a watch cut off, history compacted away): it
//     must reload everything it keeps. A single-process store (SQLite) sees
//     every change and never sends it.
//   - Coordination across nodes: compare-and-swap on small keyed records,
//     and leases with fencing epochs, timed by the store's Clock (the seam
//     tests move).
// Errors: kNotFound (no such app/deployment/alias), kAlreadyExists (duplicate
// deployment id), kFailedPrecondition (e.g. nothing to roll back to, a
// deployment that is not READY), kInvalidArgument (bad names), kInternal/
// kUnavailable for storage failures. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/runtime_kind.h"
#include "common/status.h"

namespace nubo::store {

// QUEUED -> BUILDING (a build) -> STARTING (code: started once in the
// sandbox before it may serve) -> READY or FAILED. A deployment that needs
// no build starts at STARTING (code) or READY (files).
enum class DeploymentState { kQueued, kBuilding, kStarting, kReady, kFailed };
std::string_view stateName(DeploymentState s);  // "QUEUED", "READY", ...
std::optional<DeploymentState> stateFromName(std::string_view s);

struct App {
  std::string name;
  int64_t created_ms = 0;
  std::string created_by;
};

// One value of a deployment's environment, as snapshotted when it was
// created (a secret's value still sealed: common/secret_box.h).
struct EnvValue {
  std::string name;
  std::string value;
  bool secret = false;
  bool operator==(const EnvValue&) const = default;
};

struct Deployment {
  std::string id;
  std::string app;
  std::string root_tree;      // sha256 of the root tree object
  std::string manifest_json;  // the validated manifest, canonical JSON
  std::string runtime;        // from the manifest, for routing
  DeploymentState state = DeploymentState::kQueued;
  int64_t created_ms = 0;
  std::string creator;
  uint64_t files = 0;
  uint64_t bytes = 0;
  // Builds: what the build made (empty: the deployment runs its source as
  // uploaded), the alias to move once it is READY, and why it FAILED.
  std::string output_tree;
  std::string promote_alias;
  std::string error;
  int build_attempts = 0;  // times its build started (each setDeploymentState(kBuilding))
  // The app's env when it was created (app-wide values, then its alias's):
  // what its functions get over the manifest's env. Never changes.
  std::vector<EnvValue> env;

  // The tree the deployment runs or serves.
  const std::string& servedTree() const { return output_tree.empty() ? root_tree : output_tree; }
  // (A name no runtime has, which validation never stores, reads as static.)
  RuntimeKind runtimeKind() const { return runtimeFromName(runtime).value_or(RuntimeKind::kStatic); }
};

// Where an alias sends requests: one deployment at 100, or a weighted
// traffic split of up to kMaxSplit deployments whose weights (1-100) sum to
// 100. Heaviest first.
struct SplitPart {
  std::string deployment_id;
  int weight = 100;
  bool operator==(const SplitPart&) const = default;
};
using Split = std::vector<SplitPart>;
constexpr size_t kMaxSplit = 4;
// OK, or kInvalidArgument naming what is wrong (count, weights, a repeat).
Status validateSplit(const Split& split);
// "d1=90,d2=10"; "d1" for one deployment at 100.
std::string splitText(const Split& split);
// The split sorted heaviest first (ties: as given).
Split sortedSplit(Split split);

struct Alias {
  std::string app;
  std::string name;
  std::string deployment_id;  // the heaviest of the split
  int64_t updated_ms = 0;
  Split split;  // never empty
};

// One move of an alias. "set" moves are a stack per alias: rollback undoes the
// newest one that is not yet undone and records a "rollback" move.
struct AliasEvent {
  int64_t seq = 0;
  std::string app;
  std::string alias;
  std::string deployment_id;   // where the alias points after the move (the heaviest of a split)
  std::string previous_id;     // where it pointed before ("" if nowhere)
  std::string kind;            // "set" or "rollback"
  std::string actor;
  int64_t at_ms = 0;
  bool undone = false;
  Split split;           // after the move
  Split previous_split;  // before it (empty if nowhere): what rollback restores
};

// A move of app/alias to `split` (validated, sorted heaviest first), by
// `actor` at `at_ms`; the store fills in what it pointed at before and
// the sequence number.
Result<AliasEvent> newAliasMove(std::string_view app, std::string_view alias, const Split& split,
                                std::string_view kind, std::string_view actor, int64_t at_ms);

// An API token. Roles: "admin" (everything), "deployer" (deploys, aliases,
// env, logs of its apps), "viewer" (reads its apps); api/auth.h enforces them.
struct TokenRecord {
  std::string id;
  std::string name;  // unique
  std::string hash;  // sha256 hex of the token; the token itself is never stored
  int64_t created_ms = 0;
  std::string role = "admin";
  std::vector<std::string> apps;  // the apps it may act on; empty: every app
  int64_t expires_ms = 0;         // 0: never
  int64_t last_used_ms = 0;
  std::string created_by;
};

// One change made through the API: who (the token's name), what (`action`,
// e.g. "alias.set", on `app` and `target`, with `detail` a JSON object),
// when, and from where (the client's address).
struct AuditEntry {
  int64_t seq = 0;  // assigned by the store, increasing
  int64_t at_ms = 0;
  std::string actor;
  std::string action;
  std::string app;  // empty: not about one app (tokens, gc)
  std::string target;
  std::string detail;  // a JSON object ("{}" when there is nothing to add)
  std::string source;
};

// A custom domain: requests whose Host is `host` are served by `app`'s
// `alias`. `host` is normalized (common/domain_name.h); "*.example.com"
// binds every name one label below example.com.
struct Domain {
  std::string host;
  std::string app;
  std::string alias = "production";
  int64_t created_ms = 0;
  std::string created_by;
};

// An app's configuration value: for every alias of the app (`alias` empty)
// or for one, which then wins. A secret's value is sealed.
struct EnvVar {
  std::string app;
  std::string alias;
  std::string name;
  std::string value;
  bool secret = false;
  int64_t updated_ms = 0;
  std::string updated_by;
};

struct AuditQuery {
  std::vector<std::string> apps;  // only entries of these apps; empty: every entry
  int64_t before_seq = 0;         // only entries older than this one (0: from the newest)
  size_t limit = 100;
};

struct Change {
  enum class Kind { kApp, kDeployment, kAlias, kToken, kDomain, kEnv, kResync };
  Kind kind;
  std::string app;  // empty for kToken and kResync
  uint64_t revision = 0;
};

// A small record for coordination (a build claimed, a cron tick run).
struct KeyValue {
  std::string key;
  std::string value;
  uint64_t version = 0;  // 1 when created, +1 on every write
};

// A named lease: one holder at a time until it expires or is released.
// `epoch` grows every time the lease changes hands, so work done under an
// old holding can be told from the current one (a fencing token).
struct Lease {
  std::string name;
  std::string holder;
  int64_t expires_ms = 0;  // the store's clock
  uint64_t epoch = 0;
};

class MetadataStore {
 public:
  virtual ~MetadataStore() = default;

  // Creates `d` (and its app, if new). When `promote_alias` is non-empty and
  // d is READY, the alias moves to d in the same transaction.
  virtual Status createDeployment(const Deployment& d, std::string_view promote_alias,
                                  std::string_view actor) = 0;
  // Moving to kBuilding counts one more build attempt (build_attempts).
  virtual Status setDeploymentState(std::string_view id, DeploymentState state) = 0;
  // Moves a deployment on from QUEUED, BUILDING or STARTING: STARTING with
  // its build's output tree (its start is checked next), READY (and, when
  // the deployment has a promote_alias, that alias moves to it in the same
  // transaction), or FAILED with `error`. An empty `output_tree` keeps the
  // one recorded. kFailedPrecondition when the deployment is READY or
  // FAILED already.
  virtual Status finishBuild(std::string_view id, DeploymentState state, std::string_view output_tree,
                             std::string_view error, std::string_view actor) = 0;
  virtual Result<Deployment> getDeployment(std::string_view id) = 0;
  // Newest first; limit 0 means all.
  virtual Result<std::vector<Deployment>> listDeployments(std::string_view app, size_t limit) = 0;
  // Every app's deployments still QUEUED or BUILDING (builds to run, or to
  // take over from a node that stopped), oldest first.
  virtual Result<std::vector<Deployment>> listUnbuilt() = 0;

  virtual Result<App> getApp(std::string_view name) = 0;
  virtual Result<std::vector<App>> listApps() = 0;
  // Removes the app with its deployments, aliases and history.
  virtual Status deleteApp(std::string_view name) = 0;

  // Points app/alias at a READY deployment of the same app.
  virtual Result<AliasEvent> setAlias(std::string_view app, std::string_view alias,
                                      std::string_view deployment_id, std::string_view actor) = 0;
  // Points app/alias at a traffic split of READY deployments of the app
  // (validateSplit). A "set" move like setAlias: rollback restores the
  // split before it exactly.
  virtual Result<AliasEvent> setAliasSplit(std::string_view app, std::string_view alias, const Split& split,
                                           std::string_view actor) = 0;
  // Moves app/alias back to where it pointed before its newest not-undone
  // "set"; repeated rollbacks walk further back.
  virtual Result<AliasEvent> rollbackAlias(std::string_view app, std::string_view alias,
                                           std::string_view actor) = 0;
  virtual Result<std::vector<Alias>> listAliases(std::string_view app) = 0;
  // Newest first; limit 0 means all.
  virtual Result<std::vector<AliasEvent>> aliasHistory(std::string_view app, std::string_view alias,
                                                       size_t limit) = 0;

  // kAlreadyExists when the id, the name or the hash is taken.
  virtual Status putToken(const TokenRecord& t) = 0;
  virtual Result<TokenRecord> findTokenByHash(std::string_view hash) = 0;
  virtual Result<size_t> countTokens() = 0;
  // By name.
  virtual Result<std::vector<TokenRecord>> listTokens() = 0;
  // Removes the token named `name` (it authenticates no more);
  // kFailedPrecondition when it is the last admin token, which nobody
  // could then replace.
  virtual Status deleteToken(std::string_view name) = 0;
  // Records when the token was last used.
  virtual Status touchToken(std::string_view id, int64_t used_ms) = 0;

  // Binds `d.host` to its app (which must exist; kNotFound otherwise). A
  // host bound to another app is kAlreadyExists naming that app; bound to
  // the same app, its alias is updated. Removing the app removes its
  // domains.
  virtual Status putDomain(const Domain& d) = 0;
  // The app it was bound to; kNotFound.
  virtual Result<std::string> deleteDomain(std::string_view host) = 0;
  // By host; `app` empty: every app's.
  virtual Result<std::vector<Domain>> listDomains(std::string_view app) = 0;

  // Sets every value of `vars` (all of one app, which must exist) in one
  // transaction, replacing values of the same app, alias and name.
  virtual Status putEnv(const std::vector<EnvVar>& vars) = 0;
  virtual Status deleteEnv(std::string_view app, std::string_view alias, std::string_view name) = 0;  // kNotFound
  // By alias ("" first), then name.
  virtual Result<std::vector<EnvVar>> listEnv(std::string_view app) = 0;
  // Re-seals every secret (the apps' values and the deployments' snapshots)
  // with `reseal(app, name, sealed)` in one transaction: all or nothing.
  using Reseal = std::function<Result<std::string>(std::string_view app, std::string_view name,
                                                   std::string_view sealed)>;
  virtual Result<size_t> resealSecrets(const Reseal& reseal) = 0;

  // The audit log: append-only; entries outlive the apps they name. The
  // newest kAuditKept are kept (older ones may be dropped).
  static constexpr size_t kAuditKept = 100'000;
  virtual Result<AuditEntry> appendAudit(const AuditEntry& e) = 0;
  // Newest first.
  virtual Result<std::vector<AuditEntry>> listAudit(const AuditQuery& q) = 0;

  // The revision of the last committed change (0 before any).
  virtual uint64_t revision() = 0;

  // The record at `key`, or nullopt.
  virtual Result<std::optional<KeyValue>> getKey(std::string_view key) = 0;
  // Writes `value` at `key` if its version is `expected_version` (0: the
  // key must not exist); returns the new version. kFailedPrecondition
  // (naming the current version) when another write came first.
  virtual Result<uint64_t> compareAndSwap(std::string_view key, uint64_t expected_version, std::string_view value) = 0;
  // Takes lease `name` for `holder` for `ttl`, or extends it when `holder`
  // has it already. kFailedPrecondition (naming the holder and when it
  // expires) while another holds it unexpired.
  virtual Result<Lease> acquireLease(std::string_view name, std::string_view holder, std::chrono::milliseconds ttl) = 0;
  // Gives it up; kFailedPrecondition when `holder` does not hold it (then nothing changes).
  virtual Status releaseLease(std::string_view name, std::string_view holder) = 0;

  using Watcher = std::function<void(const Change&)>;
  // Returns an id for unwatch(). Callbacks must be cheap and must not throw.
  virtual uint64_t watch(Watcher w) = 0;
  virtual void unwatch(uint64_t id) = 0;
};

}  // namespace nubo::store
