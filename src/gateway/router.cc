#include "gateway/router.h"

#include "http/message.h"

#include <spdlog/spdlog.h>

#include <random>

#include "common/domain_name.h"
#include "common/ids.h"
#include "gateway/deployment_spec.h"
#include "manifest/manifest.h"

namespace nubo::gateway {

Router::Router(store::MetadataStore& store, std::string base_domain, const SecretBox* secrets,
               metrics::Metrics* metrics)
    : store_(store),
      base_(std::move(base_domain)),
      secrets_(secrets),
      metrics_(metrics),
      table_(std::make_shared<Table>()),
      domains_(std::make_shared<DomainTable>()) {}

Router::~Router() {
  if (watch_id_) store_.unwatch(watch_id_);
}

Status Router::start() {
  watch_id_ = store_.watch([this](const store::Change& c) { onChange(c); });
  std::lock_guard reload(reload_mu_);
  RETURN_IF_ERROR(reloadAllLocked());
  return reloadDomainsLocked();
}

Status Router::reloadDomainsLocked() {
  ASSIGN_OR_RETURN(auto domains, store_.listDomains(""));
  auto table = std::make_shared<DomainTable>();
  for (const auto& d : domains) {
    DomainBinding b{d.app, d.alias};
    if (d.host.size() > 2 && d.host.compare(0, 2, "*.") == 0) table->wildcard[d.host.substr(2)] = std::move(b);
    else table->exact[d.host] = std::move(b);
  }
  std::lock_guard lock(table_mu_);
  domains_ = std::move(table);
  return Status::Ok();
}

Status Router::reloadAllLocked() {
  ASSIGN_OR_RETURN(auto apps, store_.listApps());
  auto previous = snapshot();
  auto table = std::make_shared<Table>();
  for (const auto& a : apps) {
    auto was = previous->find(a.name);
    ASSIGN_OR_RETURN(auto routes, load(a.name, was == previous->end() ? nullptr : was->second));
    (*table)[a.name] = std::move(routes);
  }
  std::lock_guard lock(table_mu_);
  table_ = std::move(table);
  return Status::Ok();
}

Result<std::shared_ptr<const AppRoutes>> Router::load(const std::string& app,
                                                      const std::shared_ptr<const AppRoutes>& previous) {
  auto routes = std::make_shared<AppRoutes>();
  ASSIGN_OR_RETURN(auto deployments, store_.listDeployments(app, 0));
  for (const auto& d : deployments) {
    if (d.state != store::DeploymentState::kReady) continue;
    if (previous) {
      if (auto it = previous->deployments.find(d.id); it != previous->deployments.end()) {
        routes->deployments[d.id] = it->second;
        continue;
      }
    }
    DeploymentRoute route{d.id, d.app, d.servedTree(), d.runtimeKind(), nullptr, nullptr,
                          metrics_ ? metrics_->app(d.app) : metrics::Metrics::kNoApp};
    if (!runtimeTraits(route.kind).runsCode()) {
      auto m = manifest::parseManifestText(d.manifest_json);
      if (m.ok()) route.site = std::make_shared<const manifest::StaticOptions>(std::move(m->static_site));
    } else {
      auto spec = deploymentSpec(d, secrets_);
      if (!spec.ok()) {
        spdlog::error("router: deployment {} of {} cannot run: {}", d.id, app, spec.status().message());
        continue;
      }
      spec->metrics_app = route.metrics_app;
      route.spec = std::make_shared<const runtime::DeploymentSpec>(std::move(*spec));
    }
    routes->deployments[d.id] = std::make_shared<const DeploymentRoute>(std::move(route));
  }
  ASSIGN_OR_RETURN(auto aliases, store_.listAliases(app));
  for (const auto& a : aliases) {
    AliasRoute route;
    int sum = 0;
    for (const auto& part : a.split) {
      sum += part.weight;
      route.parts.emplace_back(part.deployment_id, sum);
      routes->aliased.insert(part.deployment_id);
    }
    if (route.parts.size() > 1) route.cookie = "nubo-split-" + a.name + "--" + app;
    routes->aliases[a.name] = std::move(route);
  }
  return std::shared_ptr<const AppRoutes>(std::move(routes));
}

void Router::onChange(const store::Change& c) {
  if (c.kind == store::Change::Kind::kToken || c.kind == store::Change::Kind::kEnv) return;
  std::lock_guard reload(reload_mu_);
  if (c.kind == store::Change::Kind::kResync) {
    // Changes may have been missed: the whole table again (unchanged
    // deployments keep their routes).
    if (Status s = reloadAllLocked(); !s.ok()) spdlog::error("router: reloading every app failed: {}", s.toString());
    if (Status s = reloadDomainsLocked(); !s.ok()) spdlog::error("router: reloading domains failed: {}", s.toString());
    return;
  }
  // A removed app takes its domains with it.
  if (c.kind == store::Change::Kind::kDomain || c.kind == store::Change::Kind::kApp) {
    if (Status s = reloadDomainsLocked(); !s.ok()) spdlog::error("router: reloading domains failed: {}", s.toString());
    if (c.kind == store::Change::Kind::kDomain) return;
  }
  auto exists = store_.getApp(c.app);
  std::shared_ptr<const AppRoutes> routes;
  if (exists.ok()) {
    auto table = snapshot();
    auto current = table->find(c.app);
    auto loaded = load(c.app, current == table->end() ? nullptr : current->second);
    if (!loaded.ok()) {
      spdlog::error("router: reloading app {} failed: {}", c.app, loaded.status().toString());
      return;
    }
    routes = std::move(loaded).value();
  } else if (exists.status().code() != Code::kNotFound) {
    spdlog::error("router: reloading app {} failed: {}", c.app, exists.status().toString());
    return;
  }
  auto next = std::make_shared<Table>(*snapshot());
  if (routes) (*next)[c.app] = std::move(routes);
  else next->erase(c.app);
  std::lock_guard lock(table_mu_);
  table_ = std::move(next);
}

bool Router::isAliased(const std::string& app, const std::string& deployment) const {
  auto table = snapshot();
  auto it = table->find(app);
  return it != table->end() && it->second->aliased.count(deployment) > 0;
}

bool Router::has(const std::string& deployment) const {
  auto table = snapshot();
  for (const auto& [app, routes] : *table) {
    if (routes->deployments.count(deployment)) return true;
  }
  return false;
}

std::shared_ptr<const Router::Table> Router::snapshot() const {
  std::lock_guard lock(table_mu_);
  return table_;
}

const DomainBinding* Router::findDomain(const DomainTable& t, std::string_view host,
                                       std::string_view& qualifier) const {
  auto find = [](const auto& map, std::string_view key) -> const DomainBinding* {
    auto it = map.find(key);
    return it == map.end() ? nullptr : &it->second;
  };
  qualifier = {};
  if (const DomainBinding* b = find(t.exact, host)) return b;
  size_t dot = host.find('.');
  if (dot == std::string_view::npos) return nullptr;
  std::string_view first = host.substr(0, dot);
  // (A punycode label, "xn--...", names no alias.)
  size_t sep = first.substr(0, 4) == "xn--" ? std::string_view::npos : first.find("--");
  if (sep != std::string_view::npos && sep > 0) {
    // <alias>--<bound host>: the rest of the first label and the host after it.
    std::string bound = std::string(first.substr(sep + 2)) + std::string(host.substr(dot));
    if (const DomainBinding* b = find(t.exact, bound)) {
      qualifier = first.substr(0, sep);
      return b;
    }
  }
  if (const DomainBinding* b = find(t.wildcard, host.substr(dot + 1))) {
    if (sep != std::string_view::npos && sep > 0) qualifier = first.substr(0, sep);
    return b;
  }
  return nullptr;
}

Result<Resolved> Router::resolveBound(const Table& table, const DomainBinding& b, std::string_view qualifier,
                                      std::string_view path, const SplitHints& hints) const {
  return resolveApp(table, b.app, qualifier, b.alias, path, hints);
}

Result<Resolved> Router::resolve(std::string_view host, std::string_view path, const SplitHints& hints) const {
  if (path.empty() || path[0] != '/') return InvalidArgument("request target must start with '/'");
  host = requestHostKey(host);
  std::shared_ptr<const Table> apps;
  std::shared_ptr<const DomainTable> domains;
  {
    std::lock_guard lock(table_mu_);  // (once per request: both tables)
    apps = table_;
    domains = domains_;
  }
  const Table& table = *apps;
  if (!domains->empty()) {
    std::string_view qualifier;
    if (const DomainBinding* b = findDomain(*domains, host, qualifier)) {
      return resolveBound(table, *b, qualifier, path, hints);
    }
  }
  // Host-based: <label>.<base>
  if (host.size() > base_.size() + 1 && host.substr(host.size() - base_.size()) == base_ &&
      host[host.size() - base_.size() - 1] == '.') {
    std::string_view label = host.substr(0, host.size() - base_.size() - 1);
    if (label.find('.') == std::string_view::npos) return resolveLabel(table, label, path, hints);
  }
  // Path-based: /<label>/<rest>
  std::string_view rest = path.substr(1);
  size_t slash = rest.find('/');
  std::string_view label = rest.substr(0, slash);
  if (label.empty()) {
    return NotFound("no app named in this URL: use http://HOST/<app>/ or Host: <app>." + base_);
  }
  if (slash == std::string_view::npos) {
    // "/<app>" -> "/<app>/" so that relative links inside the site resolve.
    Result<Resolved> target = resolveLabel(table, label, "/", hints);
    if (!target.ok()) return target;
    Resolved r;
    r.kind = Resolved::Kind::kRedirect;
    r.location = std::string(path) + "/";
    return r;
  }
  return resolveLabel(table, label, rest.substr(slash), hints);
}

Result<Resolved> Router::resolveLabel(const Table& table, std::string_view label, std::string_view path,
                                      const SplitHints& hints) const {
  std::string_view qualifier;
  std::string_view app = label;
  if (auto sep = label.find("--"); sep != std::string_view::npos) {
    qualifier = label.substr(0, sep);
    app = label.substr(sep + 2);
  }
  return resolveApp(table, app, qualifier, "production", path, hints);
}

namespace {

// 0..99, from a generator of the calling thread's own (no lock).
int percentile() {
  thread_local std::mt19937 rng([] {
    std::string seed = randomBytes(4);
    uint32_t v = 0;
    for (char c : seed) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }());
  return static_cast<int>(std::uniform_int_distribution<int>(0, 99)(rng));
}

}  // namespace

std::string Router::pick(const AliasRoute& route, const SplitHints& hints, std::string& set_cookie) {
  if (route.parts.size() == 1) return route.parts[0].first;
  auto member = [&](std::string_view id) {
    for (const auto& [d, sum] : route.parts) {
      if (d == id) return true;
    }
    return false;
  };
  std::string_view pin = hints.get("x-nubo-pin");
  if (!pin.empty() && member(pin)) return std::string(pin);
  std::string_view kept = http::cookieValue(hints.get("cookie"), route.cookie);
  if (!kept.empty() && member(kept)) return std::string(kept);
  int p = percentile();
  std::string chosen = route.parts.back().first;
  for (const auto& [d, sum] : route.parts) {
    if (p < sum) {
      chosen = d;
      break;
    }
  }
  // Host-only (no Domain), for a week or until the split ends.
  set_cookie = route.cookie + "=" + chosen + "; Path=/; Max-Age=604800; HttpOnly; SameSite=Lax";
  return chosen;
}

Result<Resolved> Router::resolveApp(const Table& table, std::string_view app, std::string_view qualifier,
                                    std::string_view default_alias, std::string_view path,
                                    const SplitHints& hints) const {
  auto it = table.find(app);
  if (it == table.end()) return NotFound("app \"" + std::string(app) + "\" not found");
  const AppRoutes& routes = *it->second;

  Resolved r;
  r.path = path;
  std::string deployment_id;
  if (!qualifier.empty() && isDeploymentId(qualifier)) {
    deployment_id = std::string(qualifier);
    r.immutable = true;
  } else {
    std::string alias = std::string(qualifier.empty() ? default_alias : qualifier);
    auto a = routes.aliases.find(alias);
    if (a == routes.aliases.end()) {
      if (qualifier.empty() && alias == "production") {
        return NotFound("app \"" + std::string(app) + "\" has no production deployment yet; promote one with `nubo promote`");
      }
      return NotFound("app \"" + std::string(app) + "\" has no alias \"" + alias + "\"");
    }
    deployment_id = pick(a->second, hints, r.set_cookie);
  }
  auto d = routes.deployments.find(deployment_id);
  if (d == routes.deployments.end()) {
    return NotFound("deployment \"" + deployment_id + "\" of app \"" + std::string(app) + "\" not found or not ready");
  }
  r.deployment = d->second;
  return r;
}

}  // namespace nubo::gateway
