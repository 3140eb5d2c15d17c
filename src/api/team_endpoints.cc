// The control API's endpoints for running nubo as a team: who a token is,
// tokens (admin only) and the audit log (docs/api.md).
#include <algorithm>

#include "api/control_api.h"
#include "api/endpoint_util.h"
#include "common/domain_name.h"
#include "common/ids.h"

namespace nubo::api {
namespace {

Json tokenJson(const store::TokenRecord& t) {
  return {{"name", t.name},
          {"role", t.role},
          {"apps", t.apps},
          {"created_ms", t.created_ms},
          {"created_by", t.created_by},
          {"last_used_ms", t.last_used_ms ? Json(t.last_used_ms) : Json(nullptr)},
          {"expires_ms", t.expires_ms ? Json(t.expires_ms) : Json(nullptr)}};
}

Json auditJson(const store::AuditEntry& e) {
  auto parsed = parseJson(e.detail, "audit detail");
  Json detail = parsed.ok() ? std::move(parsed).value() : Json::object();
  return {{"seq", e.seq},       {"at_ms", e.at_ms},         {"actor", e.actor},   {"action", e.action},
          {"app", e.app.empty() ? Json(nullptr) : Json(e.app)}, {"target", e.target}, {"detail", detail},
          {"source", e.source}};
}

// A whole number query value in [0, max]; `fallback` when absent.
Result<int64_t> numberParam(std::string_view query, const char* key, int64_t fallback, int64_t max) {
  std::string v = queryParam(query, key);
  if (v.empty()) return fallback;
  int64_t n = 0;
  for (char c : v) {
    if (c < '0' || c > '9' || n > max) {
      return InvalidArgument(std::string(key) + " must be a whole number from 0 to " + std::to_string(max));
    }
    n = n * 10 + (c - '0');
  }
  if (n > max) return InvalidArgument(std::string(key) + " must be a whole number from 0 to " + std::to_string(max));
  return n;
}

constexpr int64_t kMaxTokenLifeS = int64_t{10} * 366 * 86400;
constexpr size_t kMaxTokenApps = 100;

}  // namespace

// GET /v1/whoami
Result<Response> ControlApi::whoami(const Call& call) {
  return jsonResponse(200, {{"name", call.who.name},
                            {"role", std::string(roleName(call.who.role))},
                            {"apps", call.who.apps}});
}

// POST /v1/tokens {"name", "role", "apps": [...], "expires_s"}: the token,
// shown this once.
Result<Response> ControlApi::createToken(const Call& call) {
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(std::string name, stringField(body, "name", "", true));
  RETURN_IF_ERROR(validateTokenName(name));
  ASSIGN_OR_RETURN(std::string role, stringField(body, "role", "", true));
  if (!roleFromName(role)) {
    return InvalidArgument("role \"" + role.substr(0, 40) + "\" is not one of admin, deployer, viewer");
  }
  store::TokenRecord rec;
  rec.name = name;
  rec.role = role;
  if (body.contains("apps")) {
    if (!body["apps"].is_array()) return InvalidArgument("field \"apps\" must be an array of app names");
    if (body["apps"].size() > kMaxTokenApps) {
      return InvalidArgument("a token may be scoped to at most " + std::to_string(kMaxTokenApps) + " apps");
    }
    for (const auto& a : body["apps"]) {
      if (!a.is_string()) return InvalidArgument("field \"apps\" must contain only app names");
      RETURN_IF_ERROR(validateAppName(a.get<std::string>(), "apps"));
      if (!std::count(rec.apps.begin(), rec.apps.end(), a.get<std::string>())) rec.apps.push_back(a);
    }
  }
  if (role == "admin" && !rec.apps.empty()) {
    return InvalidArgument("an admin token acts on every app; scope a deployer or viewer token with apps instead");
  }
  rec.created_ms = clock_.nowMillis();
  if (body.contains("expires_s")) {
    const Json& e = body["expires_s"];
    if (!e.is_number_integer() || e.get<int64_t>() <= 0 || e.get<int64_t>() > kMaxTokenLifeS) {
      return InvalidArgument("field \"expires_s\" must be a whole number of seconds from 1 to 10 years");
    }
    rec.expires_ms = rec.created_ms + e.get<int64_t>() * 1000;
  }
  rec.created_by = call.actor;
  std::string token = newToken();
  RETURN_IF_ERROR(auth_.registerToken(token, rec));
  audit(call, "token.create", "", name, {{"role", role}, {"apps", rec.apps}});
  Json j = tokenJson(rec);
  j["token"] = token;
  return jsonResponse(201, j);
}

// GET /v1/tokens: never the tokens themselves (only their hashes are kept).
Result<Response> ControlApi::listTokens(const Call&) {
  ASSIGN_OR_RETURN(auto tokens, store_.listTokens());
  Json list = Json::array();
  for (const auto& t : tokens) list.push_back(tokenJson(t));
  return jsonResponse(200, {{"tokens", list}});
}

// DELETE /v1/tokens/{name}: refused from the next request on.
Result<Response> ControlApi::revokeToken(const Call& call) {
  const std::string& name = call.params[0];
  RETURN_IF_ERROR(validateTokenName(name));
  RETURN_IF_ERROR(store_.deleteToken(name));
  audit(call, "token.revoke", "", name);
  return jsonResponse(200, {{"revoked", name}});
}

// GET /v1/audit[?app=APP][&limit=N][&before=SEQ]: newest first; a scoped
// token sees only its apps' entries.
Result<Response> ControlApi::listAudit(const Call& call) {
  store::AuditQuery q;
  std::string app = queryParam(call.req.query, "app");
  if (!app.empty()) {
    RETURN_IF_ERROR(validateAppName(app, "app"));
    RETURN_IF_ERROR(call.who.requireApp(app));
    q.apps = {app};
  } else if (auto visible = visibleApps(call.who)) {
    q.apps = *visible;
  }
  ASSIGN_OR_RETURN(int64_t limit, numberParam(call.req.query, "limit", 100, 1000));
  ASSIGN_OR_RETURN(q.before_seq, numberParam(call.req.query, "before", 0, int64_t{1} << 62));
  q.limit = static_cast<size_t>(limit == 0 ? 100 : limit);
  ASSIGN_OR_RETURN(auto entries, store_.listAudit(q));
  Json list = Json::array();
  for (const auto& e : entries) list.push_back(auditJson(e));
  return jsonResponse(200, {{"entries", list}});
}

Json ControlApi::domainJson(const store::Domain& d) const {
  return {{"host", d.host},
          {"app", d.app},
          {"alias", d.alias},
          {"created_ms", d.created_ms},
          {"created_by", d.created_by},
          {"url", urls_.scheme + "://" + (d.host.rfind("*.", 0) == 0 ? "x" + d.host.substr(1) : d.host) +
                      (urls_.port == 80 ? "" : ":" + std::to_string(urls_.port)) + "/"}};
}

// POST /v1/domains {"host", "app", "alias"}
Result<Response> ControlApi::addDomain(const Call& call) {
  ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
  ASSIGN_OR_RETURN(std::string host, stringField(body, "host", "", true));
  ASSIGN_OR_RETURN(DomainName name, normalizeDomain(host));
  std::string_view suffix = name.suffix();
  const std::string& base = urls_.base_domain;
  if (suffix == base || (suffix.size() > base.size() && suffix.substr(suffix.size() - base.size()) == base &&
                         suffix[suffix.size() - base.size() - 1] == '.')) {
    return InvalidArgument("domain " + name.host + " is under the base domain " + base +
                           ", where <app>." + base + " already names apps; bind a host outside it");
  }
  store::Domain d;
  d.host = name.host;
  ASSIGN_OR_RETURN(d.app, stringField(body, "app", "", true));
  RETURN_IF_ERROR(validateAppName(d.app, "app"));
  ASSIGN_OR_RETURN(d.alias, stringField(body, "alias", "production"));
  RETURN_IF_ERROR(validateAliasName(d.alias, "alias"));
  d.created_ms = clock_.nowMillis();
  d.created_by = call.actor;
  RETURN_IF_ERROR(store_.putDomain(d));
  audit(call, "domain.add", d.app, d.host, {{"alias", d.alias}});
  return jsonResponse(201, domainJson(d));
}

// GET /v1/domains[?app=APP]: a scoped token sees only its apps' domains.
Result<Response> ControlApi::listDomains(const Call& call) {
  std::string app = queryParam(call.req.query, "app");
  if (!app.empty()) {
    RETURN_IF_ERROR(validateAppName(app, "app"));
    RETURN_IF_ERROR(call.who.requireApp(app));
  }
  ASSIGN_OR_RETURN(auto domains, store_.listDomains(app));
  Json list = Json::array();
  for (const auto& d : domains) {
    if (call.who.mayUse(d.app)) list.push_back(domainJson(d));
  }
  return jsonResponse(200, {{"domains", list}});
}

// DELETE /v1/domains/{host}
Result<Response> ControlApi::removeDomain(const Call& call) {
  ASSIGN_OR_RETURN(DomainName name, normalizeDomain(call.params[0]));
  ASSIGN_OR_RETURN(std::string app, store_.deleteDomain(name.host));
  audit(call, "domain.remove", app, name.host);
  return jsonResponse(200, {{"removed", name.host}});
}

}  // namespace nubo::api
