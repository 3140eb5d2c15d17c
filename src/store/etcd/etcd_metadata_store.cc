#include "store/etcd/etcd_metadata_store.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <random>
#include <thread>
#include <tuple>

#include "common/json.h"

namespace nubo::store {

using etcd::Compare;
using etcd::EtcdClient;
using etcd::TxnOp;

namespace {

constexpr int kAttempts = 40;          // read-compare-write rounds before giving up
constexpr size_t kOpsPerTxn = 100;     // under etcd's default --max-txn-ops (128)
constexpr int64_t kSeqSpan = 9'999'999'999'999'999;  // sequence numbers in keys count down from it

// A sequence number in a key, so that ascending key order is newest first
// (etcd applies a limit to ascending key ranges without reading the rest).
std::string countdown(int64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016lld", static_cast<long long>(kSeqSpan - seq));
  return buf;
}

int64_t seqOfCountdown(std::string_view key) {
  std::string_view digits = key.substr(key.rfind('/') + 1);
  int64_t v = 0;
  for (char c : digits) v = v * 10 + (c - '0');
  return kSeqSpan - v;
}

Json envJson(const std::vector<EnvValue>& env) {
  Json list = Json::array();
  for (const auto& e : env) list.push_back({{"n", e.name}, {"v", e.value}, {"s", e.secret}});
  return list;
}

std::vector<EnvValue> envOf(const Json& list) {
  std::vector<EnvValue> out;
  if (!list.is_array()) return out;
  for (const auto& e : list) out.push_back({e.value("n", ""), e.value("v", ""), e.value("s", false)});
  return out;
}

Json deploymentJson(const Deployment& d) {
  return {{"id", d.id},
          {"app", d.app},
          {"root_tree", d.root_tree},
          {"manifest", d.manifest_json},
          {"runtime", d.runtime},
          {"state", stateName(d.state)},
          {"created_ms", d.created_ms},
          {"creator", d.creator},
          {"files", d.files},
          {"bytes", d.bytes},
          {"output_tree", d.output_tree},
          {"promote_alias", d.promote_alias},
          {"error", d.error},
          {"build_attempts", d.build_attempts},
          {"env", envJson(d.env)}};
}

Result<Json> parseRecord(std::string_view text, std::string_view key) {
  auto j = parseJson(text, "etcd record " + std::string(key));
  if (!j.ok()) return Internal(j.status().message());
  if (!j->is_object()) return Internal("etcd record " + std::string(key) + " is not a JSON object");
  return std::move(j).value();
}

Result<Deployment> deploymentOf(const etcd::KeyValue& kv) {
  ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
  Deployment d;
  d.id = j.value("id", "");
  d.app = j.value("app", "");
  d.root_tree = j.value("root_tree", "");
  d.manifest_json = j.value("manifest", "");
  d.runtime = j.value("runtime", "");
  d.state = stateFromName(j.value("state", "")).value_or(DeploymentState::kFailed);
  d.created_ms = j.value("created_ms", int64_t{0});
  d.creator = j.value("creator", "");
  d.files = j.value("files", uint64_t{0});
  d.bytes = j.value("bytes", uint64_t{0});
  d.output_tree = j.value("output_tree", "");
  d.promote_alias = j.value("promote_alias", "");
  d.error = j.value("error", "");
  d.build_attempts = j.value("build_attempts", 0);
  d.env = envOf(j.value("env", Json::array()));
  return d;
}

Json splitJson(const Split& split) {
  Json list = Json::array();
  for (const auto& p : split) list.push_back({{"d", p.deployment_id}, {"w", p.weight}});
  return list;
}

Split splitOf(const Json& list) {
  Split out;
  if (!list.is_array()) return out;
  for (const auto& p : list) out.push_back({p.value("d", ""), p.value("w", 100)});
  return out;
}

Json eventJson(const AliasEvent& e) {
  return {{"seq", e.seq},         {"deployment_id", e.deployment_id}, {"previous_id", e.previous_id},
          {"kind", e.kind},       {"actor", e.actor},                 {"at_ms", e.at_ms},
          {"undone", e.undone},   {"split", splitJson(e.split)},      {"previous_split", splitJson(e.previous_split)}};
}

Result<AliasEvent> eventOf(const etcd::KeyValue& kv, std::string_view app, std::string_view alias) {
  ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
  AliasEvent e;
  e.seq = j.value("seq", int64_t{0});
  e.app = std::string(app);
  e.alias = std::string(alias);
  e.deployment_id = j.value("deployment_id", "");
  e.previous_id = j.value("previous_id", "");
  e.kind = j.value("kind", "");
  e.actor = j.value("actor", "");
  e.at_ms = j.value("at_ms", int64_t{0});
  e.undone = j.value("undone", false);
  e.split = splitOf(j.value("split", Json::array()));
  e.previous_split = splitOf(j.value("previous_split", Json::array()));
  return e;
}

Json tokenJson(const TokenRecord& t) {
  return {{"id", t.id},     {"name", t.name},         {"hash", t.hash},         {"created_ms", t.created_ms},
          {"role", t.role}, {"apps", t.apps},         {"expires_ms", t.expires_ms}, {"created_by", t.created_by}};
}

Result<TokenRecord> tokenOf(const etcd::KeyValue& kv) {
  ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
  TokenRecord t;
  t.id = j.value("id", "");
  t.name = j.value("name", "");
  t.hash = j.value("hash", "");
  t.created_ms = j.value("created_ms", int64_t{0});
  t.role = j.value("role", "admin");
  t.apps = j.value("apps", std::vector<std::string>());
  t.expires_ms = j.value("expires_ms", int64_t{0});
  t.created_by = j.value("created_by", "");
  return t;
}

int64_t integerOf(std::string_view text) {
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return 0;
    v = v * 10 + (c - '0');
  }
  return v;
}

Json domainJson(const Domain& d) {
  return {{"host", d.host}, {"app", d.app}, {"alias", d.alias}, {"created_ms", d.created_ms},
          {"created_by", d.created_by}};
}

Result<Domain> domainOf(const etcd::KeyValue& kv) {
  ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
  return Domain{j.value("host", ""), j.value("app", ""), j.value("alias", "production"),
                j.value("created_ms", int64_t{0}), j.value("created_by", "")};
}

Json envVarJson(const EnvVar& v) {
  return {{"app", v.app},       {"alias", v.alias},           {"name", v.name},
          {"value", v.value},   {"secret", v.secret},         {"updated_ms", v.updated_ms},
          {"updated_by", v.updated_by}};
}


Json auditJson(const AuditEntry& e) {
  return {{"seq", e.seq},       {"at_ms", e.at_ms},   {"actor", e.actor},   {"action", e.action},
          {"app", e.app},       {"target", e.target}, {"detail", e.detail}, {"source", e.source}};
}

Result<AuditEntry> auditOf(const etcd::KeyValue& kv) {
  ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
  return AuditEntry{j.value("seq", int64_t{0}),  j.value("at_ms", int64_t{0}), j.value("actor", ""),
                    j.value("action", ""),       j.value("app", ""),           j.value("target", ""),
                    j.value("detail", "{}"),     j.value("source", "")};
}

// "The key is as read": unchanged since, or still absent.
Compare asRead(const std::string& key, const std::optional<etcd::KeyValue>& kv) {
  return kv ? Compare::modRevision(key, Compare::Result::kEqual, kv->mod_revision)
            : Compare::version(key, Compare::Result::kEqual, 0);
}

std::optional<etcd::KeyValue> first(const etcd::RangeResult& r) {
  if (r.kvs.empty()) return std::nullopt;
  return r.kvs.front();
}

// Runs `attempt` (which reads, then commits or finds it lost a race) until
// it commits: Result<std::optional<T>>, nullopt for "start over".
template <class T, class F>
Result<T> untilCommitted(std::string_view what, F attempt) {
  thread_local std::minstd_rand jitter(std::random_device{}());
  for (int i = 0; i < kAttempts; ++i) {
    Result<std::optional<T>> r = attempt();
    if (!r.ok()) return r.status();
    if (*r) return std::move(**r);
    // Another writer came first: a short random pause, growing.
    std::this_thread::sleep_for(std::chrono::microseconds(jitter() % (200 * (i + 1))));
  }
  return Unavailable(std::string(what) + ": other writers kept changing the same records; try again");
}

}  // namespace

// ---- keys ------------------------------------------------------------------

namespace {
struct Keys {
  const std::string& p;
  std::string meta() const { return p + "m/"; }
  std::string apps() const { return p + "m/app/"; }
  std::string app(std::string_view a) const { return apps() + std::string(a); }
  std::string allDeps() const { return p + "m/dep/"; }
  std::string deps(std::string_view a) const { return allDeps() + std::string(a) + "/"; }
  std::string dep(std::string_view a, std::string_view id) const { return deps(a) + std::string(id); }
  std::string depId(std::string_view id) const { return p + "m/depid/" + std::string(id); }
  std::string unbuiltAll() const { return p + "m/unbuilt/"; }
  std::string unbuilt(std::string_view id) const { return unbuiltAll() + std::string(id); }
  std::string aliases(std::string_view a) const { return p + "m/alias/" + std::string(a) + "/"; }
  std::string alias(std::string_view a, std::string_view n) const { return aliases(a) + std::string(n); }
  std::string appEvents(std::string_view a) const { return p + "m/aliasev/" + std::string(a) + "/"; }
  std::string events(std::string_view a, std::string_view n) const { return appEvents(a) + std::string(n) + "/"; }
  std::string event(std::string_view a, std::string_view n, int64_t seq) const { return events(a, n) + countdown(seq); }
  std::string tokens() const { return p + "m/token/"; }
  std::string token(std::string_view id) const { return tokens() + std::string(id); }
  std::string tokenName(std::string_view n) const { return p + "m/tokname/" + std::string(n); }
  std::string tokenHash(std::string_view h) const { return p + "m/tokhash/" + std::string(h); }
  std::string tokenUsedAll() const { return p + "m/tokused/"; }
  std::string tokenUsed(std::string_view id) const { return tokenUsedAll() + std::string(id); }
  std::string tokenSet() const { return p + "m/tokens"; }  // rewritten with every token added or removed
  std::string domains() const { return p + "m/domain/"; }
  std::string domain(std::string_view h) const { return domains() + std::string(h); }
  std::string allEnv() const { return p + "m/env/"; }
  std::string env(std::string_view a) const { return allEnv() + std::string(a) + "/"; }
  std::string envOf(std::string_view a) const { return env(a) + "all"; }  // every value of the app, one record
  std::string auditSeq() const { return p + "audit/seq"; }
  std::string auditAll() const { return p + "audit/all/"; }
  std::string auditApps(std::string_view a) const { return p + "audit/app/" + std::string(a) + "/"; }
  std::string kv(std::string_view k) const { return p + "kv/" + std::string(k); }
  std::string lease(std::string_view n) const { return p + "lease/" + std::string(n); }
};
}  // namespace

// ---- lifetime and watch ----------------------------------------------------

Result<std::unique_ptr<EtcdMetadataStore>> EtcdMetadataStore::open(std::shared_ptr<etcd::EtcdClient> etcd,
                                                                   Clock& clock, EtcdStoreOptions options) {
  if (options.prefix.empty() || options.prefix.front() != '/') {
    return InvalidArgument("the etcd key prefix \"" + options.prefix + "\" must start with '/' (e.g. /nubo/)");
  }
  if (options.prefix.back() != '/') options.prefix += '/';
  std::unique_ptr<EtcdMetadataStore> s(new EtcdMetadataStore(std::move(etcd), clock, std::move(options)));
  const Keys k{s->prefix_};
  ASSIGN_OR_RETURN(auto now, s->etcd_->range(k.meta(), EtcdClient::prefixEnd(k.meta()),
                                             etcd::RangeOptions{0, 0, false, true}));
  s->revision_ = now.revision;
  s->follower_ = std::thread([store = s.get(), from = now.revision + 1] { store->follow(from); });
  s->deliverer_ = std::thread([store = s.get()] { store->deliverQueued(); });
  return s;
}

EtcdMetadataStore::EtcdMetadataStore(std::shared_ptr<etcd::EtcdClient> etcd, Clock& clock, EtcdStoreOptions options)
    : etcd_(std::move(etcd)), clock_(clock), prefix_(std::move(options.prefix)),
      audit_kept_(std::max<size_t>(options.audit_kept, 1)) {}

EtcdMetadataStore::~EtcdMetadataStore() { stopFollowing(); }

void EtcdMetadataStore::stopFollowing() {
  {
    std::lock_guard lock(stop_mu_);
    stop_ = true;
  }
  stop_cv_.notify_all();
  {
    std::lock_guard lock(queue_mu_);  // (the delivery thread is waiting, or sees stop_)
  }
  queue_cv_.notify_all();
  if (follower_.joinable()) follower_.join();
  if (deliverer_.joinable()) deliverer_.join();
}

void EtcdMetadataStore::enqueue(Batch b) {
  {
    std::lock_guard lock(queue_mu_);
    queue_.push_back(std::move(b));
  }
  queue_cv_.notify_one();
}

void EtcdMetadataStore::deliverQueued() {
  for (;;) {
    Batch b;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stop_.load() || !queue_.empty(); });
      if (stop_) return;
      b = std::move(queue_.front());
      queue_.pop_front();
    }
    switch (b.kind) {
      case Batch::Kind::kEvents: deliver(b.events); break;
      case Batch::Kind::kResync: announce({Change{Change::Kind::kResync, "", 0}}, b.revision); break;
      case Batch::Kind::kFollowing: synced_ = true; break;
    }
  }
}

bool EtcdMetadataStore::pause(int ms) {
  std::unique_lock lock(stop_mu_);
  return !stop_cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stop_.load(); });
}

uint64_t EtcdMetadataStore::revision() { return static_cast<uint64_t>(revision_.load()); }

uint64_t EtcdMetadataStore::watch(Watcher w) { return watchers_.add(std::move(w)); }

void EtcdMetadataStore::unwatch(uint64_t id) { watchers_.remove(id); }

Result<etcd::TxnResult> EtcdMetadataStore::write(const std::vector<Compare>& compares, const std::vector<TxnOp>& ops,
                                                 const std::vector<TxnOp>& failure) {
  std::shared_lock writing(writes_mu_);
  ASSIGN_OR_RETURN(etcd::TxnResult r, etcd_->txn(compares, ops, failure));
  if (r.succeeded) {
    std::lock_guard lock(local_mu_);
    local_.insert(r.revision);
  }
  return r;
}

void EtcdMetadataStore::announce(std::vector<Change> changes, int64_t revision) {
  int64_t seen = revision_.load();
  while (seen < revision && !revision_.compare_exchange_weak(seen, revision)) {
  }
  for (auto& c : changes) {
    c.revision = static_cast<uint64_t>(revision);
    watchers_.notify(c);
  }
}

void EtcdMetadataStore::follow(int64_t from) {
  const Keys k{prefix_};
  int64_t next = from;
  int backoff_ms = 50;
  std::string last_problem;
  while (!stop_) {
    Status s = etcd_->watch(
        k.meta(), EtcdClient::prefixEnd(k.meta()), next,
        [&](const std::vector<etcd::WatchEvent>& events, int64_t) {
          // Handed to the delivery thread: watchers may read the store,
          // which cannot be done from inside this transfer's callback.
          if (events.empty()) {  // (the watch is set up)
            enqueue(Batch{Batch::Kind::kFollowing, {}, 0});
            if (!last_problem.empty()) spdlog::info("etcd watch: following again from revision {}", next);
            last_problem.clear();
            backoff_ms = 50;
            return !stop_;
          }
          enqueue(Batch{Batch::Kind::kEvents, events, 0});
          next = events.back().kv.mod_revision + 1;
          return !stop_;
        },
        &stop_, true);
    if (stop_) break;
    if (s.code() == Code::kFailedPrecondition) {
      // History compacted past `next`: everything may have changed.
      auto now = etcd_->range(k.meta(), EtcdClient::prefixEnd(k.meta()), etcd::RangeOptions{0, 0, false, true});
      if (now.ok()) {
        spdlog::warn("{}: every watcher reloads at revision {}", s.message(), now->revision);
        next = now->revision + 1;
        enqueue(Batch{Batch::Kind::kResync, {}, now->revision});
        continue;
      }
      s = now.status();
    }
    if (s.message() != last_problem) spdlog::warn("etcd watch: {}; resuming from revision {}", s.message(), next);
    last_problem = s.message();
    if (!pause(backoff_ms)) break;
    backoff_ms = std::min(backoff_ms * 2, 2000);
  }
}

void EtcdMetadataStore::deliver(const std::vector<etcd::WatchEvent>& events) {
  const Keys k{prefix_};
  const std::string meta = k.meta();
  size_t i = 0;
  while (i < events.size()) {
    const int64_t rev = events[i].kv.mod_revision;
    size_t end = i;
    while (end < events.size() && events[end].kv.mod_revision == rev) ++end;
    bool mine;
    {
      // Waits out writes in flight: one that made `rev` has noted it.
      std::unique_lock all(writes_mu_);
      std::lock_guard lock(local_mu_);
      mine = local_.erase(rev) > 0;
      local_.erase(local_.begin(), local_.lower_bound(rev));
    }
    std::set<std::pair<int, std::string>> kinds;  // (kind, app), each once
    for (size_t j = i; !mine && j < end; ++j) {
      const etcd::WatchEvent& e = events[j];
      std::string_view rest = std::string_view(e.kv.key).substr(std::min(meta.size(), e.kv.key.size()));
      size_t slash = rest.find('/');
      std::string_view root = rest.substr(0, slash);
      std::string_view tail = slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
      std::string_view app = tail.substr(0, tail.find('/'));
      auto add = [&](Change::Kind kind, std::string_view a) { kinds.emplace(static_cast<int>(kind), std::string(a)); };
      if (root == "app") add(Change::Kind::kApp, app);
      else if (root == "dep") add(Change::Kind::kDeployment, app);
      else if (root == "alias") add(Change::Kind::kAlias, app);
      else if (root == "token" || root == "tokname" || root == "tokhash") add(Change::Kind::kToken, "");
      else if (root == "env") add(Change::Kind::kEnv, app);
      else if (root == "domain") {
        auto d = domainOf(e.deleted ? e.prev_kv : e.kv);
        add(Change::Kind::kDomain, d.ok() ? d->app : "");
      }
    }
    std::vector<Change> changes;
    for (const auto& [kind, app] : kinds) changes.push_back(Change{static_cast<Change::Kind>(kind), app, 0});
    if (!mine) announce(std::move(changes), rev);
    i = end;
  }
}

// ---- deployments -----------------------------------------------------------

namespace {

// Adds to `compares` and `ops` the move of app/alias to `split` (from
// `current`, the alias's record as read), and returns the move.
Result<AliasEvent> moveAlias(const Keys& k, std::string_view app, std::string_view alias,
                             const std::optional<etcd::KeyValue>& current, const Split& split, std::string_view kind,
                             std::string_view actor, int64_t now, std::vector<Compare>& compares,
                             std::vector<TxnOp>& ops) {
  ASSIGN_OR_RETURN(AliasEvent e, newAliasMove(app, alias, split, kind, actor, now));
  e.seq = 1;
  if (current) {
    ASSIGN_OR_RETURN(Json j, parseRecord(current->value, current->key));
    e.previous_split = splitOf(j.value("split", Json::array()));
    if (!e.previous_split.empty()) e.previous_id = e.previous_split[0].deployment_id;
    e.seq = j.value("seq", int64_t{0}) + 1;
  }
  std::string key = k.alias(app, alias);
  compares.push_back(asRead(key, current));
  Json record = {{"deployment_id", e.deployment_id}, {"updated_ms", now}, {"split", splitJson(e.split)}, {"seq", e.seq}};
  ops.push_back(TxnOp::put(key, dumpJson(record)));
  ops.push_back(TxnOp::put(k.event(app, alias, e.seq), dumpJson(eventJson(e))));
  return e;
}

}  // namespace

Status EtcdMetadataStore::createDeployment(const Deployment& d, std::string_view promote_alias,
                                           std::string_view actor) {
  const Keys k{prefix_};
  const bool promote = !promote_alias.empty() && d.state == DeploymentState::kReady;
  bool attempted = false;
  Deployment attempted_as;
  auto committed = untilCommitted<int64_t>("creating deployment " + d.id, [&]() -> Result<std::optional<int64_t>> {
    std::vector<TxnOp> reads = {TxnOp::get(k.app(d.app)), TxnOp::get(k.depId(d.id))};
    if (promote) reads.push_back(TxnOp::get(k.alias(d.app, promote_alias)));
    reads.push_back(TxnOp::get(k.dep(d.app, d.id)));
    ASSIGN_OR_RETURN(etcd::TxnResult read, etcd_->txn({}, reads));
    if (!read.ranges[1].kvs.empty()) {
      // Written by an earlier attempt whose answer was lost (etcd said
      // "unavailable" as its leader changed, having committed it)?
      auto stored = first(read.ranges.back());
      if (attempted && stored && stored->value == dumpJson(deploymentJson(attempted_as))) {
        return std::optional<int64_t>(stored->mod_revision);
      }
      return AlreadyExists("deployment " + d.id + " already exists");
    }
    auto app = first(read.ranges[0]);
    std::vector<Compare> compares = {asRead(k.app(d.app), app), Compare::version(k.depId(d.id), Compare::Result::kEqual, 0)};
    std::vector<TxnOp> ops;
    if (!app) ops.push_back(TxnOp::put(k.app(d.app), dumpJson(Json{{"created_ms", d.created_ms}, {"created_by", actor}})));
    Deployment stored = d;
    if (d.state == DeploymentState::kReady) stored.promote_alias.clear();
    else stored.promote_alias = std::string(promote_alias);
    ops.push_back(TxnOp::put(k.dep(d.app, d.id), dumpJson(deploymentJson(stored))));
    ops.push_back(TxnOp::put(k.depId(d.id), d.app));
    if (d.state == DeploymentState::kQueued || d.state == DeploymentState::kBuilding) {
      ops.push_back(TxnOp::put(k.unbuilt(d.id), d.app));
    }
    if (promote) {
      auto moved = moveAlias(k, d.app, promote_alias, first(read.ranges[2]), {{d.id, 100}}, "set", actor,
                             clock_.nowMillis(), compares, ops);
      if (!moved.ok()) return moved.status();
    }
    attempted = true;
    attempted_as = stored;
    ASSIGN_OR_RETURN(etcd::TxnResult w, write(compares, ops));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kDeployment, d.app, 0}}, *committed);
  return Status::Ok();
}

Result<Deployment> EtcdMetadataStore::readDeployment(std::string_view id, int64_t* mod_revision, std::string* key) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto index, etcd_->range(k.depId(id)));
  if (index.kvs.empty()) return NotFound("deployment " + std::string(id) + " not found");
  std::string at = k.dep(index.kvs[0].value, id);
  ASSIGN_OR_RETURN(auto found, etcd_->range(at));
  // (An index entry outlives its deployment briefly when its app is removed.)
  if (found.kvs.empty()) return NotFound("deployment " + std::string(id) + " not found");
  if (mod_revision) *mod_revision = found.kvs[0].mod_revision;
  if (key) *key = at;
  return deploymentOf(found.kvs[0]);
}

Status EtcdMetadataStore::setDeploymentState(std::string_view id, DeploymentState state) {
  std::string app;
  auto committed = untilCommitted<int64_t>("changing deployment " + std::string(id), [&]() -> Result<std::optional<int64_t>> {
    int64_t rev = 0;
    std::string key;
    ASSIGN_OR_RETURN(Deployment d, readDeployment(id, &rev, &key));
    app = d.app;
    d.state = state;
    if (state == DeploymentState::kBuilding) ++d.build_attempts;
    const Keys k{prefix_};
    bool unbuilt = state == DeploymentState::kQueued || state == DeploymentState::kBuilding;
    ASSIGN_OR_RETURN(etcd::TxnResult w, write({Compare::modRevision(key, Compare::Result::kEqual, rev)},
                                              {TxnOp::put(key, dumpJson(deploymentJson(d))),
                                               unbuilt ? TxnOp::put(k.unbuilt(d.id), d.app) : TxnOp::del(k.unbuilt(d.id))}));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kDeployment, app, 0}}, *committed);
  return Status::Ok();
}

Status EtcdMetadataStore::finishBuild(std::string_view id, DeploymentState state, std::string_view output_tree,
                                      std::string_view error, std::string_view actor) {
  if (state != DeploymentState::kStarting && state != DeploymentState::kReady && state != DeploymentState::kFailed) {
    return InvalidArgument("a build ends STARTING, READY or FAILED");
  }
  const Keys k{prefix_};
  std::string app;
  auto committed = untilCommitted<int64_t>("finishing the build of " + std::string(id), [&]() -> Result<std::optional<int64_t>> {
    int64_t rev = 0;
    std::string key;
    ASSIGN_OR_RETURN(Deployment d, readDeployment(id, &rev, &key));
    if (d.state == DeploymentState::kReady || d.state == DeploymentState::kFailed) {
      return FailedPrecondition("deployment " + d.id + " is " + std::string(stateName(d.state)) + " already");
    }
    app = d.app;
    std::string promote = d.promote_alias;
    d.state = state;
    if (!output_tree.empty()) d.output_tree = std::string(output_tree);
    d.error = std::string(error);
    if (state != DeploymentState::kStarting) d.promote_alias.clear();  // STARTING keeps the alias to move once READY
    std::vector<Compare> compares = {Compare::modRevision(key, Compare::Result::kEqual, rev)};
    std::vector<TxnOp> ops = {TxnOp::put(key, dumpJson(deploymentJson(d))), TxnOp::del(k.unbuilt(d.id))};
    if (state == DeploymentState::kReady && !promote.empty()) {
      ASSIGN_OR_RETURN(auto alias, etcd_->range(k.alias(d.app, promote)));
      auto moved = moveAlias(k, d.app, promote, first(alias), {{d.id, 100}}, "set", actor, clock_.nowMillis(),
                             compares, ops);
      if (!moved.ok()) return moved.status();
    }
    ASSIGN_OR_RETURN(etcd::TxnResult w, write(compares, ops));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kDeployment, app, 0}, Change{Change::Kind::kAlias, app, 0}}, *committed);
  return Status::Ok();
}

Result<Deployment> EtcdMetadataStore::getDeployment(std::string_view id) { return readDeployment(id); }

Result<std::vector<Deployment>> EtcdMetadataStore::listDeployments(std::string_view app, size_t limit) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto all, etcd_->range(k.deps(app), EtcdClient::prefixEnd(k.deps(app))));
  std::sort(all.kvs.begin(), all.kvs.end(),
            [](const etcd::KeyValue& a, const etcd::KeyValue& b) { return a.create_revision > b.create_revision; });
  std::vector<Deployment> out;
  for (const auto& kv : all.kvs) {
    if (limit && out.size() == limit) break;
    ASSIGN_OR_RETURN(Deployment d, deploymentOf(kv));
    out.push_back(std::move(d));
  }
  return out;
}

Result<std::vector<Deployment>> EtcdMetadataStore::listUnbuilt() {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto index, etcd_->range(k.unbuiltAll(), EtcdClient::prefixEnd(k.unbuiltAll())));
  std::sort(index.kvs.begin(), index.kvs.end(),
            [](const etcd::KeyValue& a, const etcd::KeyValue& b) { return a.create_revision < b.create_revision; });
  std::vector<Deployment> out;
  for (const auto& kv : index.kvs) {
    auto d = readDeployment(std::string_view(kv.key).substr(k.unbuiltAll().size()));
    if (!d.ok() && d.status().code() == Code::kNotFound) continue;  // (its app was removed)
    if (!d.ok()) return d.status();
    if (d->state == DeploymentState::kQueued || d->state == DeploymentState::kBuilding) out.push_back(std::move(*d));
  }
  return out;
}

// ---- apps ------------------------------------------------------------------

namespace {
Result<App> appOf(const etcd::KeyValue& kv, std::string_view name) {
  ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
  return App{std::string(name), j.value("created_ms", int64_t{0}), j.value("created_by", "")};
}
}  // namespace

Result<App> EtcdMetadataStore::getApp(std::string_view name) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.app(name)));
  if (r.kvs.empty()) return NotFound("app " + std::string(name) + " not found");
  return appOf(r.kvs[0], name);
}

Result<std::vector<App>> EtcdMetadataStore::listApps() {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.apps(), EtcdClient::prefixEnd(k.apps())));
  std::vector<App> out;
  for (const auto& kv : r.kvs) {
    ASSIGN_OR_RETURN(App a, appOf(kv, std::string_view(kv.key).substr(k.apps().size())));
    out.push_back(std::move(a));
  }
  return out;
}

Status EtcdMetadataStore::deleteApp(std::string_view name) {
  const Keys k{prefix_};
  std::vector<std::string> ids;
  auto committed = untilCommitted<int64_t>("removing app " + std::string(name), [&]() -> Result<std::optional<int64_t>> {
    ASSIGN_OR_RETURN(auto app, etcd_->range(k.app(name)));
    if (app.kvs.empty()) return NotFound("app " + std::string(name) + " not found");
    const int64_t at = app.revision;
    ASSIGN_OR_RETURN(auto deps, etcd_->range(k.deps(name), EtcdClient::prefixEnd(k.deps(name)),
                                             etcd::RangeOptions{0, at, true, false}));
    ASSIGN_OR_RETURN(auto domains, etcd_->range(k.domains(), EtcdClient::prefixEnd(k.domains()),
                                                etcd::RangeOptions{0, at, false, false}));
    std::vector<Compare> compares = {
        Compare::modRevision(k.app(name), Compare::Result::kEqual, app.kvs[0].mod_revision),
        Compare::unchangedSince(k.deps(name), EtcdClient::prefixEnd(k.deps(name)), at),
        Compare::unchangedSince(k.domains(), EtcdClient::prefixEnd(k.domains()), at)};
    std::vector<TxnOp> ops = {TxnOp::del(k.app(name))};
    for (std::string prefix : {k.deps(name), k.aliases(name), k.appEvents(name), k.env(name)}) {
      ops.push_back(TxnOp::del(prefix, EtcdClient::prefixEnd(prefix)));
    }
    for (const auto& kv : domains.kvs) {
      auto d = domainOf(kv);
      if (d.ok() && d->app == name) ops.push_back(TxnOp::del(kv.key));
    }
    ASSIGN_OR_RETURN(etcd::TxnResult w, write(compares, ops));
    if (!w.succeeded) return std::optional<int64_t>();
    ids.clear();
    for (const auto& kv : deps.kvs) ids.push_back(kv.key.substr(k.deps(name).size()));
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  // The id index, in batches (a deployment it names is gone: lookups say
  // not found meanwhile).
  for (size_t i = 0; i < ids.size(); i += kOpsPerTxn / 2) {
    std::vector<TxnOp> ops;
    for (size_t j = i; j < std::min(ids.size(), i + kOpsPerTxn / 2); ++j) {
      ops.push_back(TxnOp::del(k.depId(ids[j])));
      ops.push_back(TxnOp::del(k.unbuilt(ids[j])));
    }
    if (auto r = etcd_->txn({}, ops); !r.ok()) {
      spdlog::warn("removing app {}: its deployment index stays for now: {}", name, r.status().message());
      break;
    }
  }
  announce({Change{Change::Kind::kApp, std::string(name), 0}}, *committed);
  return Status::Ok();
}

// ---- aliases ---------------------------------------------------------------

Result<AliasEvent> EtcdMetadataStore::setAlias(std::string_view app, std::string_view alias,
                                               std::string_view deployment_id, std::string_view actor) {
  return setAliasSplit(app, alias, {{std::string(deployment_id), 100}}, actor);
}

Result<AliasEvent> EtcdMetadataStore::setAliasSplit(std::string_view app, std::string_view alias, const Split& split,
                                                    std::string_view actor) {
  RETURN_IF_ERROR(validateSplit(split));
  const Keys k{prefix_};
  using Moved = std::pair<AliasEvent, int64_t>;
  ASSIGN_OR_RETURN(Moved moved, (untilCommitted<Moved>("moving alias " + std::string(alias), [&]() -> Result<std::optional<Moved>> {
    std::vector<TxnOp> reads = {TxnOp::get(k.alias(app, alias))};
    for (const auto& part : split) reads.push_back(TxnOp::get(k.dep(app, part.deployment_id)));
    ASSIGN_OR_RETURN(etcd::TxnResult read, etcd_->txn({}, reads));
    std::vector<Compare> compares;
    for (size_t i = 0; i < split.size(); ++i) {
      auto kv = first(read.ranges[i + 1]);
      if (!kv) {
        return NotFound("deployment " + split[i].deployment_id + " not found in app " + std::string(app));
      }
      ASSIGN_OR_RETURN(Deployment d, deploymentOf(*kv));
      if (d.state != DeploymentState::kReady) {
        return FailedPrecondition("deployment " + d.id + " is " + std::string(stateName(d.state)) +
                                  ", only READY deployments can be aliased");
      }
      compares.push_back(asRead(kv->key, kv));
    }
    std::vector<TxnOp> ops;
    ASSIGN_OR_RETURN(AliasEvent e, moveAlias(k, app, alias, first(read.ranges[0]), split, "set", actor,
                                             clock_.nowMillis(), compares, ops));
    ASSIGN_OR_RETURN(etcd::TxnResult w, write(compares, ops));
    if (!w.succeeded) return std::optional<Moved>();
    return std::optional<Moved>(Moved{std::move(e), w.revision});
  })));
  announce({Change{Change::Kind::kAlias, std::string(app), 0}}, moved.second);
  return moved.first;
}

Result<AliasEvent> EtcdMetadataStore::rollbackAlias(std::string_view app, std::string_view alias,
                                                    std::string_view actor) {
  const Keys k{prefix_};
  using Moved = std::pair<AliasEvent, int64_t>;
  ASSIGN_OR_RETURN(Moved moved, (untilCommitted<Moved>("rolling back alias " + std::string(alias), [&]() -> Result<std::optional<Moved>> {
    ASSIGN_OR_RETURN(auto current, etcd_->range(k.alias(app, alias)));
    if (current.kvs.empty()) return NotFound("app " + std::string(app) + " has no alias " + std::string(alias));
    // The newest "set" not yet undone (events list newest first).
    const std::string events = k.events(app, alias);
    std::optional<etcd::KeyValue> undo_kv;
    AliasEvent undo;
    std::string from = events;
    while (!undo_kv) {
      ASSIGN_OR_RETURN(auto page, etcd_->range(from, EtcdClient::prefixEnd(events),
                                               etcd::RangeOptions{64, current.revision, false, false}));
      for (const auto& kv : page.kvs) {
        ASSIGN_OR_RETURN(AliasEvent e, eventOf(kv, app, alias));
        if (e.kind == "set" && !e.undone) {
          undo_kv = kv;
          undo = std::move(e);
          break;
        }
      }
      if (undo_kv || !page.more || page.kvs.empty()) break;
      from = page.kvs.back().key + '\0';
    }
    if (!undo_kv || undo.previous_id.empty()) {
      return FailedPrecondition("alias " + std::string(alias) + " of app " + std::string(app) +
                                " has no earlier deployment to roll back to");
    }
    std::vector<Compare> compares;
    std::vector<TxnOp> ops;
    undo.undone = true;
    ops.push_back(TxnOp::put(undo_kv->key, dumpJson(eventJson(undo))));
    ASSIGN_OR_RETURN(AliasEvent e, moveAlias(k, app, alias, current.kvs[0], undo.previous_split, "rollback", actor,
                                             clock_.nowMillis(), compares, ops));
    ASSIGN_OR_RETURN(etcd::TxnResult w, write(compares, ops));
    if (!w.succeeded) return std::optional<Moved>();
    return std::optional<Moved>(Moved{std::move(e), w.revision});
  })));
  announce({Change{Change::Kind::kAlias, std::string(app), 0}}, moved.second);
  return moved.first;
}

Result<std::vector<Alias>> EtcdMetadataStore::listAliases(std::string_view app) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.aliases(app), EtcdClient::prefixEnd(k.aliases(app))));
  std::vector<Alias> out;
  for (const auto& kv : r.kvs) {
    ASSIGN_OR_RETURN(Json j, parseRecord(kv.value, kv.key));
    Alias a;
    a.app = std::string(app);
    a.name = kv.key.substr(k.aliases(app).size());
    a.split = splitOf(j.value("split", Json::array()));
    a.deployment_id = j.value("deployment_id", a.split.empty() ? std::string() : a.split[0].deployment_id);
    a.updated_ms = j.value("updated_ms", int64_t{0});
    out.push_back(std::move(a));
  }
  return out;
}

Result<std::vector<AliasEvent>> EtcdMetadataStore::aliasHistory(std::string_view app, std::string_view alias,
                                                                size_t limit) {
  const Keys k{prefix_};
  const std::string events = k.events(app, alias);
  ASSIGN_OR_RETURN(auto r, etcd_->range(events, EtcdClient::prefixEnd(events),
                                        etcd::RangeOptions{static_cast<int64_t>(limit), 0, false, false}));
  std::vector<AliasEvent> out;
  for (const auto& kv : r.kvs) {
    ASSIGN_OR_RETURN(AliasEvent e, eventOf(kv, app, alias));
    out.push_back(std::move(e));
  }
  return out;
}

// ---- tokens ----------------------------------------------------------------

Status EtcdMetadataStore::putToken(const TokenRecord& t) {
  const Keys k{prefix_};
  if (t.id.empty() || t.name.empty() || t.hash.empty()) return InvalidArgument("a token needs an id, a name and a hash");
  auto eq0 = [](std::string key) { return Compare::version(std::move(key), Compare::Result::kEqual, 0); };
  ASSIGN_OR_RETURN(etcd::TxnResult w,
                   write({eq0(k.token(t.id)), eq0(k.tokenName(t.name)), eq0(k.tokenHash(t.hash))},
                         {TxnOp::put(k.token(t.id), dumpJson(tokenJson(t))), TxnOp::put(k.tokenName(t.name), t.id),
                          TxnOp::put(k.tokenHash(t.hash), t.id), TxnOp::put(k.tokenSet(), t.id)}));
  if (!w.succeeded) return AlreadyExists("a token named " + t.name + " (or with its id or secret) already exists");
  announce({Change{Change::Kind::kToken, "", 0}}, w.revision);
  return Status::Ok();
}

Result<TokenRecord> EtcdMetadataStore::findTokenByHash(std::string_view hash) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto index, etcd_->range(k.tokenHash(hash)));
  if (index.kvs.empty()) return NotFound("no such token");
  const std::string& id = index.kvs[0].value;
  ASSIGN_OR_RETURN(etcd::TxnResult r, etcd_->txn({}, {TxnOp::get(k.token(id)), TxnOp::get(k.tokenUsed(id))}));
  if (r.ranges[0].kvs.empty()) return NotFound("no such token");
  ASSIGN_OR_RETURN(TokenRecord t, tokenOf(r.ranges[0].kvs[0]));
  if (!r.ranges[1].kvs.empty()) t.last_used_ms = integerOf(r.ranges[1].kvs[0].value);
  return t;
}

Result<size_t> EtcdMetadataStore::countTokens() {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.tokens(), EtcdClient::prefixEnd(k.tokens()), etcd::RangeOptions{0, 0, false, true}));
  return static_cast<size_t>(r.count);
}

Result<std::vector<TokenRecord>> EtcdMetadataStore::listTokens() {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(etcd::TxnResult r,
                   etcd_->txn({}, {TxnOp::get(k.tokens(), EtcdClient::prefixEnd(k.tokens())),
                                   TxnOp::get(k.tokenUsedAll(), EtcdClient::prefixEnd(k.tokenUsedAll()))}));
  std::map<std::string, int64_t> used;
  for (const auto& kv : r.ranges[1].kvs) used[kv.key.substr(k.tokenUsedAll().size())] = integerOf(kv.value);
  std::vector<TokenRecord> out;
  for (const auto& kv : r.ranges[0].kvs) {
    ASSIGN_OR_RETURN(TokenRecord t, tokenOf(kv));
    if (auto it = used.find(t.id); it != used.end()) t.last_used_ms = it->second;
    out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const TokenRecord& a, const TokenRecord& b) { return a.name < b.name; });
  return out;
}

Status EtcdMetadataStore::deleteToken(std::string_view name) {
  const Keys k{prefix_};
  auto committed = untilCommitted<int64_t>("revoking token " + std::string(name), [&]() -> Result<std::optional<int64_t>> {
    ASSIGN_OR_RETURN(etcd::TxnResult read,
                     etcd_->txn({}, {TxnOp::get(k.tokenName(name)), TxnOp::get(k.tokens(), EtcdClient::prefixEnd(k.tokens())),
                                     TxnOp::get(k.tokenSet())}));
    if (read.ranges[0].kvs.empty()) return NotFound("no token named " + std::string(name));
    const std::string id = read.ranges[0].kvs[0].value;
    std::optional<TokenRecord> target;
    int admins = 0;
    for (const auto& kv : read.ranges[1].kvs) {
      ASSIGN_OR_RETURN(TokenRecord t, tokenOf(kv));
      if (t.role == "admin") ++admins;
      if (t.id == id) target = std::move(t);
    }
    if (!target) return NotFound("no token named " + std::string(name));
    if (target->role == "admin" && admins <= 1) {
      return FailedPrecondition("token " + std::string(name) +
                                " is the last admin token; create another admin token before revoking it");
    }
    // Every token added or removed rewrites the set's key: comparing it
    // keeps two revocations from removing the last two admin tokens.
    ASSIGN_OR_RETURN(etcd::TxnResult w,
                     write({asRead(k.tokenSet(), first(read.ranges[2]))},
                           {TxnOp::del(k.token(id)), TxnOp::del(k.tokenName(name)), TxnOp::del(k.tokenHash(target->hash)),
                            TxnOp::del(k.tokenUsed(id)), TxnOp::put(k.tokenSet(), id)}));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kToken, "", 0}}, *committed);
  return Status::Ok();
}

Status EtcdMetadataStore::touchToken(std::string_view id, int64_t used_ms) {
  const Keys k{prefix_};
  return untilCommitted<bool>("recording a token's use", [&]() -> Result<std::optional<bool>> {
           ASSIGN_OR_RETURN(etcd::TxnResult read, etcd_->txn({}, {TxnOp::get(k.token(id)), TxnOp::get(k.tokenUsed(id))}));
           if (read.ranges[0].kvs.empty()) return std::optional<bool>(true);  // (revoked meanwhile)
           auto used = first(read.ranges[1]);
           if (used && integerOf(used->value) >= used_ms) return std::optional<bool>(true);
           ASSIGN_OR_RETURN(etcd::TxnResult w,
                            etcd_->txn({asRead(k.token(id), read.ranges[0].kvs[0]), asRead(k.tokenUsed(id), used)},
                                       {TxnOp::put(k.tokenUsed(id), std::to_string(used_ms))}));
           if (!w.succeeded) return std::optional<bool>();
           return std::optional<bool>(true);
         })
      .status();
}

// ---- domains ---------------------------------------------------------------

Status EtcdMetadataStore::putDomain(const Domain& d) {
  const Keys k{prefix_};
  auto committed = untilCommitted<int64_t>("binding domain " + d.host, [&]() -> Result<std::optional<int64_t>> {
    ASSIGN_OR_RETURN(etcd::TxnResult read, etcd_->txn({}, {TxnOp::get(k.app(d.app)), TxnOp::get(k.domain(d.host))}));
    auto app = first(read.ranges[0]);
    if (!app) return NotFound("app " + d.app + " not found; deploy it before binding a domain to it");
    auto bound = first(read.ranges[1]);
    Domain record = d;
    if (bound) {
      ASSIGN_OR_RETURN(Domain current, domainOf(*bound));
      if (current.app != d.app) {
        return AlreadyExists("domain " + d.host + " is bound to app " + current.app +
                             "; remove it there first (nubo domains rm " + d.host + ")");
      }
      record = current;
      record.alias = d.alias;
    }
    ASSIGN_OR_RETURN(etcd::TxnResult w, write({asRead(k.app(d.app), app), asRead(k.domain(d.host), bound)},
                                              {TxnOp::put(k.domain(d.host), dumpJson(domainJson(record)))}));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kDomain, d.app, 0}}, *committed);
  return Status::Ok();
}

Result<std::string> EtcdMetadataStore::deleteDomain(std::string_view host) {
  const Keys k{prefix_};
  using Removed = std::pair<std::string, int64_t>;
  ASSIGN_OR_RETURN(Removed removed, (untilCommitted<Removed>("removing domain " + std::string(host), [&]() -> Result<std::optional<Removed>> {
    ASSIGN_OR_RETURN(auto bound, etcd_->range(k.domain(host)));
    if (bound.kvs.empty()) return NotFound("domain " + std::string(host) + " is not bound to any app");
    ASSIGN_OR_RETURN(Domain d, domainOf(bound.kvs[0]));
    ASSIGN_OR_RETURN(etcd::TxnResult w, write({asRead(k.domain(host), bound.kvs[0])}, {TxnOp::del(k.domain(host))}));
    if (!w.succeeded) return std::optional<Removed>();
    return std::optional<Removed>(Removed{d.app, w.revision});
  })));
  announce({Change{Change::Kind::kDomain, removed.first, 0}}, removed.second);
  return removed.first;
}

Result<std::vector<Domain>> EtcdMetadataStore::listDomains(std::string_view app) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.domains(), EtcdClient::prefixEnd(k.domains())));
  std::vector<Domain> out;
  for (const auto& kv : r.kvs) {
    ASSIGN_OR_RETURN(Domain d, domainOf(kv));
    if (app.empty() || d.app == app) out.push_back(std::move(d));
  }
  return out;
}

// ---- env -------------------------------------------------------------------

namespace {

// An app's env values, all in one record (any number set in one write).
Result<std::vector<EnvVar>> envOfRecord(const std::optional<etcd::KeyValue>& kv) {
  std::vector<EnvVar> out;
  if (!kv) return out;
  auto j = parseJson(kv->value, "etcd record " + kv->key);
  if (!j.ok() || !j->is_array()) return Internal("etcd record " + kv->key + " is not a JSON array");
  for (const auto& v : *j) {
    out.push_back(EnvVar{v.value("app", ""), v.value("alias", ""), v.value("name", ""), v.value("value", ""),
                         v.value("secret", false), v.value("updated_ms", int64_t{0}), v.value("updated_by", "")});
  }
  return out;
}

std::string envRecord(std::vector<EnvVar> vars) {
  std::sort(vars.begin(), vars.end(),
            [](const EnvVar& a, const EnvVar& b) { return std::tie(a.alias, a.name) < std::tie(b.alias, b.name); });
  Json list = Json::array();
  for (const auto& v : vars) list.push_back(envVarJson(v));
  return dumpJson(list);
}

}  // namespace

Status EtcdMetadataStore::putEnv(const std::vector<EnvVar>& vars) {
  if (vars.empty()) return Status::Ok();
  const Keys k{prefix_};
  const std::string& app = vars[0].app;
  auto committed = untilCommitted<int64_t>("setting the env of " + app, [&]() -> Result<std::optional<int64_t>> {
    ASSIGN_OR_RETURN(etcd::TxnResult read, etcd_->txn({}, {TxnOp::get(k.app(app)), TxnOp::get(k.envOf(app))}));
    auto exists = first(read.ranges[0]);
    if (!exists) return NotFound("app " + app + " not found; deploy it before setting its env");
    auto record = first(read.ranges[1]);
    ASSIGN_OR_RETURN(std::vector<EnvVar> now, envOfRecord(record));
    for (const auto& v : vars) {
      if (v.app != app) return InvalidArgument("env values set together belong to one app");
      auto same = std::find_if(now.begin(), now.end(),
                               [&](const EnvVar& e) { return e.alias == v.alias && e.name == v.name; });
      if (same != now.end()) *same = v;
      else now.push_back(v);
    }
    ASSIGN_OR_RETURN(etcd::TxnResult w, write({asRead(k.app(app), exists), asRead(k.envOf(app), record)},
                                              {TxnOp::put(k.envOf(app), envRecord(std::move(now)))}));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kEnv, app, 0}}, *committed);
  return Status::Ok();
}

Status EtcdMetadataStore::deleteEnv(std::string_view app, std::string_view alias, std::string_view name) {
  const Keys k{prefix_};
  auto committed = untilCommitted<int64_t>("removing an env value of " + std::string(app), [&]() -> Result<std::optional<int64_t>> {
    ASSIGN_OR_RETURN(auto r, etcd_->range(k.envOf(app)));
    auto record = first(r);
    ASSIGN_OR_RETURN(std::vector<EnvVar> now, envOfRecord(record));
    auto gone = std::remove_if(now.begin(), now.end(), [&](const EnvVar& e) { return e.alias == alias && e.name == name; });
    if (gone == now.end()) {
      return NotFound("app " + std::string(app) + " has no env value " + std::string(name) +
                      (alias.empty() ? std::string() : " for alias " + std::string(alias)));
    }
    now.erase(gone, now.end());
    ASSIGN_OR_RETURN(etcd::TxnResult w, write({asRead(k.envOf(app), record)}, {TxnOp::put(k.envOf(app), envRecord(now))}));
    if (!w.succeeded) return std::optional<int64_t>();
    return std::optional<int64_t>(w.revision);
  });
  if (!committed.ok()) return committed.status();
  announce({Change{Change::Kind::kEnv, std::string(app), 0}}, *committed);
  return Status::Ok();
}

Result<std::vector<EnvVar>> EtcdMetadataStore::listEnv(std::string_view app) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.envOf(app)));
  return envOfRecord(first(r));
}

Result<size_t> EtcdMetadataStore::resealSecrets(const Reseal& reseal) {
  const Keys k{prefix_};
  // Everything computed first: a reseal that fails changes nothing.
  ASSIGN_OR_RETURN(etcd::TxnResult read,
                   etcd_->txn({}, {TxnOp::get(k.allEnv(), EtcdClient::prefixEnd(k.allEnv())),
                                   TxnOp::get(k.allDeps(), EtcdClient::prefixEnd(k.allDeps()))}));
  struct Rewrite {
    etcd::KeyValue kv;
    std::string value;
  };
  std::vector<Rewrite> rewrites;
  size_t count = 0;
  for (const auto& kv : read.ranges[0].kvs) {
    ASSIGN_OR_RETURN(std::vector<EnvVar> vars, envOfRecord(kv));
    bool changed = false;
    for (auto& v : vars) {
      if (!v.secret) continue;
      ASSIGN_OR_RETURN(v.value, reseal(v.app, v.name, v.value));
      changed = true;
      ++count;
    }
    if (changed) rewrites.push_back({kv, envRecord(std::move(vars))});
  }
  for (const auto& kv : read.ranges[1].kvs) {
    ASSIGN_OR_RETURN(Deployment d, deploymentOf(kv));
    bool changed = false;
    for (auto& e : d.env) {
      if (!e.secret) continue;
      ASSIGN_OR_RETURN(e.value, reseal(d.app, e.name, e.value));
      changed = true;
      ++count;
    }
    if (changed) rewrites.push_back({kv, dumpJson(deploymentJson(d))});
  }
  for (size_t i = 0; i < rewrites.size(); i += kOpsPerTxn / 2) {
    std::vector<Compare> compares;
    std::vector<TxnOp> ops;
    for (size_t j = i; j < std::min(rewrites.size(), i + kOpsPerTxn / 2); ++j) {
      compares.push_back(asRead(rewrites[j].kv.key, rewrites[j].kv));
      ops.push_back(TxnOp::put(rewrites[j].kv.key, rewrites[j].value));
    }
    ASSIGN_OR_RETURN(etcd::TxnResult w, write(compares, ops));
    if (!w.succeeded) {
      return Unavailable("re-sealing secrets: values changed meanwhile; the next start finishes the rotation");
    }
  }
  return count;
}

// ---- audit -----------------------------------------------------------------

Result<AuditEntry> EtcdMetadataStore::appendAudit(const AuditEntry& e) {
  const Keys k{prefix_};
  AuditEntry out = e;
  if (out.detail.empty()) out.detail = "{}";
  // The counter key's version numbers the entries.
  ASSIGN_OR_RETURN(AuditEntry written, (untilCommitted<AuditEntry>("appending to the audit log", [&]() -> Result<std::optional<AuditEntry>> {
    ASSIGN_OR_RETURN(auto counter, etcd_->range(k.auditSeq()));
    int64_t version = counter.kvs.empty() ? 0 : counter.kvs[0].version;
    out.seq = version + 1;
    std::string record = dumpJson(auditJson(out));
    ASSIGN_OR_RETURN(etcd::TxnResult w,
                     etcd_->txn({Compare::version(k.auditSeq(), Compare::Result::kEqual, version)},
                                {TxnOp::put(k.auditSeq(), ""), TxnOp::put(k.auditAll() + countdown(out.seq), record),
                                 TxnOp::put(k.auditApps(out.app) + countdown(out.seq), record)}));
    if (!w.succeeded) return std::optional<AuditEntry>();
    return std::optional<AuditEntry>(out);
  })));
  if (written.seq % static_cast<int64_t>(std::max<size_t>(audit_kept_ / 100, 1)) == 0 &&
      written.seq > static_cast<int64_t>(audit_kept_)) {
    // Bounded: the newest audit_kept_ entries stay (trimmed now and then,
    // oldest first, a batch at a time).
    const std::string from = k.auditAll() + countdown(written.seq - static_cast<int64_t>(audit_kept_));
    auto old = etcd_->range(from, EtcdClient::prefixEnd(k.auditAll()),
                            etcd::RangeOptions{static_cast<int64_t>(kOpsPerTxn / 2), 0, false, false});
    if (old.ok()) {
      std::vector<TxnOp> ops;
      for (const auto& kv : old->kvs) {
        auto entry = auditOf(kv);
        ops.push_back(TxnOp::del(kv.key));
        if (entry.ok()) ops.push_back(TxnOp::del(k.auditApps(entry->app) + countdown(entry->seq)));
      }
      if (!ops.empty()) (void)etcd_->txn({}, ops);
    }
  }
  return written;
}

Result<std::vector<AuditEntry>> EtcdMetadataStore::listAudit(const AuditQuery& q) {
  const Keys k{prefix_};
  auto page = [&](const std::string& prefix) -> Result<std::vector<AuditEntry>> {
    std::string from = q.before_seq > 0 ? prefix + countdown(q.before_seq - 1) : prefix;
    ASSIGN_OR_RETURN(auto r, etcd_->range(from, EtcdClient::prefixEnd(prefix),
                                          etcd::RangeOptions{static_cast<int64_t>(q.limit), 0, false, false}));
    std::vector<AuditEntry> out;
    for (const auto& kv : r.kvs) {
      ASSIGN_OR_RETURN(AuditEntry e, auditOf(kv));
      out.push_back(std::move(e));
    }
    return out;
  };
  if (q.apps.empty()) return page(k.auditAll());
  std::vector<AuditEntry> out;
  for (const auto& app : q.apps) {
    ASSIGN_OR_RETURN(auto some, page(k.auditApps(app)));
    out.insert(out.end(), some.begin(), some.end());
  }
  std::sort(out.begin(), out.end(), [](const AuditEntry& a, const AuditEntry& b) { return a.seq > b.seq; });
  if (q.limit && out.size() > q.limit) out.resize(q.limit);
  return out;
}

// ---- coordination ----------------------------------------------------------

Result<std::optional<KeyValue>> EtcdMetadataStore::getKey(std::string_view key) {
  const Keys k{prefix_};
  ASSIGN_OR_RETURN(auto r, etcd_->range(k.kv(key)));
  if (r.kvs.empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(KeyValue{std::string(key), r.kvs[0].value, static_cast<uint64_t>(r.kvs[0].version)});
}

Result<uint64_t> EtcdMetadataStore::compareAndSwap(std::string_view key, uint64_t expected_version,
                                                   std::string_view value) {
  if (key.empty() || key.size() > 512) return InvalidArgument("a record's key must have 1 to 512 bytes");
  const Keys k{prefix_};
  const std::string at = k.kv(key);
  ASSIGN_OR_RETURN(etcd::TxnResult w,
                   etcd_->txn({Compare::version(at, Compare::Result::kEqual, static_cast<int64_t>(expected_version))},
                              {TxnOp::put(at, std::string(value))}, {TxnOp::get(at)}));
  if (!w.succeeded) {
    int64_t current = w.ranges.empty() || w.ranges[0].kvs.empty() ? 0 : w.ranges[0].kvs[0].version;
    return FailedPrecondition("record " + std::string(key) + " is at version " + std::to_string(current) + ", not " +
                              std::to_string(expected_version) + ": another write came first");
  }
  return expected_version + 1;
}

namespace {
Json leaseJson(const Lease& l) {
  return {{"holder", l.holder}, {"expires_ms", l.expires_ms}, {"epoch", l.epoch}};
}
}  // namespace

Result<Lease> EtcdMetadataStore::acquireLease(std::string_view name, std::string_view holder,
                                              std::chrono::milliseconds ttl) {
  if (name.empty() || holder.empty()) return InvalidArgument("a lease needs a name and a holder");
  if (ttl.count() <= 0) return InvalidArgument("a lease's time to live must be positive");
  const Keys k{prefix_};
  const std::string key = k.lease(name);
  return untilCommitted<Lease>("taking lease " + std::string(name), [&]() -> Result<std::optional<Lease>> {
    ASSIGN_OR_RETURN(auto r, etcd_->range(key));
    int64_t now = clock_.nowMillis();
    Lease l{std::string(name), std::string(holder), now + ttl.count(), 1};
    auto current = first(r);
    if (current) {
      ASSIGN_OR_RETURN(Json j, parseRecord(current->value, key));
      std::string by = j.value("holder", "");
      int64_t expires = j.value("expires_ms", int64_t{0});
      uint64_t epoch = j.value("epoch", uint64_t{0});
      if (by != holder && expires > now) {
        return FailedPrecondition("lease " + std::string(name) + " is held by " + by + " for " +
                                  std::to_string(expires - now) + " ms more");
      }
      l.epoch = by == holder && expires > now ? epoch : epoch + 1;  // a new holding: a new epoch
    }
    ASSIGN_OR_RETURN(etcd::TxnResult w, etcd_->txn({asRead(key, current)}, {TxnOp::put(key, dumpJson(leaseJson(l)))}));
    if (!w.succeeded) return std::optional<Lease>();
    return std::optional<Lease>(l);
  });
}

Status EtcdMetadataStore::releaseLease(std::string_view name, std::string_view holder) {
  const Keys k{prefix_};
  const std::string key = k.lease(name);
  return untilCommitted<bool>("releasing lease " + std::string(name), [&]() -> Result<std::optional<bool>> {
           ASSIGN_OR_RETURN(auto r, etcd_->range(key));
           int64_t now = clock_.nowMillis();
           auto current = first(r);
           std::optional<Lease> l;
           if (current) {
             ASSIGN_OR_RETURN(Json j, parseRecord(current->value, key));
             l = Lease{std::string(name), j.value("holder", ""), j.value("expires_ms", int64_t{0}),
                       j.value("epoch", uint64_t{0})};
           }
           if (!l || l->holder != holder || l->expires_ms <= now) {
             return FailedPrecondition(std::string(holder) + " does not hold lease " + std::string(name));
           }
           l->expires_ms = now;  // expired now, the epoch kept (the next holder gets the next one)
           ASSIGN_OR_RETURN(etcd::TxnResult w, etcd_->txn({asRead(key, current)}, {TxnOp::put(key, dumpJson(leaseJson(*l)))}));
           if (!w.succeeded) return std::optional<bool>();
           return std::optional<bool>(true);
         })
      .status();
}

}  // namespace nubo::store
