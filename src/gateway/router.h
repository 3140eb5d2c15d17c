// Router: maps a data-plane request (Host, path) to the deployment that
// serves it, per DESIGN.md "URLs":
//
//   Host: a bound custom domain             -> its app's alias (default production)
//   Host: <alias>--<bound domain>           -> that alias of the domain's app
//                                              (or <deployment-id>--: that deployment)
//   Host: <label>.<wildcard domain>         -> as a bound domain (*.example.com
//                                              binds one label; an exact host wins;
//                                              a label <alias>--<x> picks the alias)
//   Host: <app>.<base>                      -> app's "production" alias
//   Host: <alias>--<app>.<base>             -> that alias
//   Host: <deployment-id>--<app>.<base>     -> that exact deployment
//   any other Host: first path segment is the label above
//                   (/<app>/..., /<alias>--<app>/..., /<deployment>--<app>/...)
//
// Custom domains are matched before the base domain, ignoring case, the port
// and a trailing dot. The routing table is an immutable snapshot swapped
// atomically; resolve() never touches the store and never blocks on I/O.
// The snapshot of an app (and the domain table) is rebuilt from the
// MetadataStore whenever the store reports a change to it (watch), so
// promote, rollback and domain changes are visible as soon as they commit.
//
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>

#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "manifest/manifest.h"
#include "runtime/pool.h"

#include "common/secret_box.h"
#include "common/status.h"
#include "metrics/metrics.h"
#include "store/metadata_store.h"

namespace nubo::gateway {

struct DeploymentRoute {
  std::string id;
  std::string app;
  std::string root_tree;
  RuntimeKind kind = RuntimeKind::kStatic;
  // static: the manifest's "static" (fallback page, headers, redirects).
  std::shared_ptr<const manifest::StaticOptions> site;
  // code: how it runs (gateway/deployment_spec.h).
  std::shared_ptr<const runtime::DeploymentSpec> spec;
  // The app's id in the metrics (metrics::Metrics::app()).
  uint32_t metrics_app = 0;
};

// An alias's deployments with the running sum of their weights (a split of
// one: {id, 100}).
struct AliasRoute {
  std::vector<std::pair<std::string, int>> parts;  // deployment id, cumulative weight (the last is 100)
  std::string cookie;                              // the name of the cookie that keeps a client on one
};

struct AppRoutes {
  std::unordered_map<std::string, AliasRoute> aliases;  // alias -> where it points
  std::unordered_map<std::string, std::shared_ptr<const DeploymentRoute>> deployments;  // READY only
  std::unordered_set<std::string> aliased;  // deployments some alias points at
};

// What a request says about which deployment of a traffic split it wants:
// the X-Nubo-Pin header (a deployment id, for trying a canary) and its
// Cookie header (the gateway's cookie from an earlier response). Read only
// when the alias has a split: `header(ctx, name)` looks one up.
struct SplitHints {
  const void* ctx = nullptr;
  std::string_view (*header)(const void* ctx, std::string_view name) = nullptr;
  std::string_view get(std::string_view name) const { return header ? header(ctx, name) : std::string_view(); }
};

struct Resolved {
  enum class Kind { kServe, kRedirect };
  Kind kind = Kind::kServe;
  std::shared_ptr<const DeploymentRoute> deployment;
  std::string_view path;     // path within the deployment, starts with '/'
  bool immutable = false;    // addressed by deployment id: never changes
  std::string location;      // kRedirect: where to
  // Set when an alias's traffic split chose the deployment afresh: the
  // Set-Cookie value that keeps the client on it while the split lasts.
  std::string set_cookie;
};

// Hashes std::string keys so that a map looks them up by string_view (no
// string made per request).
struct NameHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <class V>
using NameMap = std::unordered_map<std::string, V, NameHash, std::equal_to<>>;

// Where a custom domain sends requests.
struct DomainBinding {
  std::string app;
  std::string alias;
};

struct DomainTable {
  NameMap<DomainBinding> exact;     // host -> binding
  NameMap<DomainBinding> wildcard;  // "example.com" for *.example.com
  bool empty() const { return exact.empty() && wildcard.empty(); }
};

class Router {
 public:
  // `secrets` opens the secrets of deployments' env (may be null: then a
  // deployment with secrets cannot run). `metrics` (may be null) names the
  // ids routes count their requests under.
  Router(store::MetadataStore& store, std::string base_domain, const SecretBox* secrets = nullptr,
         metrics::Metrics* metrics = nullptr);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Loads every app and starts following changes.
  Status start();

  // kNotFound with a message naming what was not found (app, alias,
  // deployment) and how URLs look.
  // An alias with a traffic split picks one of its deployments by weight,
  // unless `hints` pin one of them or carry the split's cookie naming one.
  Result<Resolved> resolve(std::string_view host, std::string_view path, const SplitHints& hints = {}) const;

  // True when some alias of `app` points at the deployment (its pool keeps
  // min_instances).
  bool isAliased(const std::string& app, const std::string& deployment) const;
  // Whether a READY deployment is in the table (so requests can reach it).
  bool has(const std::string& deployment) const;

 private:
  using Table = NameMap<std::shared_ptr<const AppRoutes>>;

  // The app's routes from the store; `previous` routes of deployments
  // already loaded are kept (a deployment never changes once READY).
  Result<std::shared_ptr<const AppRoutes>> load(const std::string& app,
                                                const std::shared_ptr<const AppRoutes>& previous = nullptr);
  // Loads every app's routes into a new table (reload_mu_ held).
  Status reloadAllLocked();
  // Loads the domain table (reload_mu_ held).
  Status reloadDomainsLocked();
  // The deployment of a request to a bound domain: `qualifier` (an alias or
  // a deployment id) when the host named one, else the binding's alias.
  Result<Resolved> resolveBound(const Table& table, const DomainBinding& b, std::string_view qualifier,
                                std::string_view path, const SplitHints& hints) const;
  // A binding for `host`, and the qualifier its first label named.
  const DomainBinding* findDomain(const DomainTable& t, std::string_view host, std::string_view& qualifier) const;
  // The deployment of `route` this request goes to; `set_cookie` set when
  // a split chose it afresh.
  static std::string pick(const AliasRoute& route, const SplitHints& hints, std::string& set_cookie);
  Result<Resolved> resolveApp(const Table& table, std::string_view app, std::string_view qualifier,
                              std::string_view default_alias, std::string_view path, const SplitHints& hints) const;
  void onChange(const store::Change& c);
  Result<Resolved> resolveLabel(const Table& table, std::string_view label, std::string_view path,
                                const SplitHints& hints) const;
  std::shared_ptr<const Table> snapshot() const;

  store::MetadataStore& store_;
  const std::string base_;
  const SecretBox* secrets_;
  metrics::Metrics* metrics_;
  uint64_t watch_id_ = 0;

  std::mutex reload_mu_;  // serializes reload+swap so the newest reload wins

  mutable std::mutex table_mu_;       // guards only the pointer swaps/copies
  std::shared_ptr<const Table> table_;  // guarded by table_mu_
  std::shared_ptr<const DomainTable> domains_;  // guarded by table_mu_
};

}  // namespace nubo::gateway
