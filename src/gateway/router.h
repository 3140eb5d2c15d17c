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

#include "manifest/manifest.h"
#include "runtime/pool.h"

#include "common/status.h"
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
};

struct AppRoutes {
  std::unordered_map<std::string, std::string> aliases;  // alias -> deployment id
  std::unordered_map<std::string, std::shared_ptr<const DeploymentRoute>> deployments;  // READY only
  std::unordered_set<std::string> aliased;  // deployments some alias points at
};

struct Resolved {
  enum class Kind { kServe, kRedirect };
  Kind kind = Kind::kServe;
  std::shared_ptr<const DeploymentRoute> deployment;
  std::string_view path;     // path within the deployment, starts with '/'
  bool immutable = false;    // addressed by deployment id: never changes
  std::string location;      // kRedirect: where to
};

// Where a custom domain sends requests.
struct DomainBinding {
  std::string app;
  std::string alias;
};

struct DomainTable {
  std::unordered_map<std::string, DomainBinding> exact;     // host -> binding
  std::unordered_map<std::string, DomainBinding> wildcard;  // "example.com" for *.example.com
  bool empty() const { return exact.empty() && wildcard.empty(); }
};

class Router {
 public:
  Router(store::MetadataStore& store, std::string base_domain);
  ~Router();
  Router(const Router&) = delete;
  Router& operator=(const Router&) = delete;

  // Loads every app and starts following changes.
  Status start();

  // kNotFound with a message naming what was not found (app, alias,
  // deployment) and how URLs look.
  Result<Resolved> resolve(std::string_view host, std::string_view path) const;

  // True when some alias of `app` points at the deployment (its pool keeps
  // min_instances).
  bool isAliased(const std::string& app, const std::string& deployment) const;
  // Whether a READY deployment is in the table (so requests can reach it).
  bool has(const std::string& deployment) const;

 private:
  using Table = std::unordered_map<std::string, std::shared_ptr<const AppRoutes>>;

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
  Result<Resolved> resolveBound(const DomainBinding& b, std::string_view qualifier, std::string_view path) const;
  // A binding for `host`, and the qualifier its first label named.
  const DomainBinding* findDomain(const DomainTable& t, std::string_view host, std::string_view& qualifier) const;
  Result<Resolved> resolveApp(std::string_view app, std::string_view qualifier, std::string_view default_alias,
                              std::string_view path) const;
  void onChange(const store::Change& c);
  Result<Resolved> resolveLabel(std::string_view label, std::string_view path) const;
  std::shared_ptr<const Table> snapshot() const;

  store::MetadataStore& store_;
  const std::string base_;
  uint64_t watch_id_ = 0;

  std::mutex reload_mu_;  // serializes reload+swap so the newest reload wins

  mutable std::mutex table_mu_;       // guards only the pointer swaps/copies
  std::shared_ptr<const Table> table_;  // guarded by table_mu_
  std::shared_ptr<const DomainTable> domains_;  // guarded by table_mu_
};

}  // namespace nubo::gateway
