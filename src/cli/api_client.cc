#include "cli/api_client.h"

#include "common/percent_encode.h"

namespace nubo::cli {

namespace {
std::string appPath(std::string_view app, std::string_view rest = "") {
  return "/v1/apps/" + percentEncode(app) + std::string(rest);
}
std::string deploymentPath(std::string_view id, std::string_view rest = "") {
  return "/v1/deployments/" + percentEncode(id) + std::string(rest);
}
}  // namespace

Result<Json> ApiClient::negotiate(const Json& request) { return http_.call("POST", "/v1/negotiate", &request); }

Status ApiClient::putObject(std::string_view kind, std::string_view hash, std::string_view body) {
  if (kind != "blobs" && kind != "trees") return InvalidArgument("objects are blobs or trees");
  ASSIGN_OR_RETURN(HttpResponse r, http_.send("PUT", "/v1/" + std::string(kind) + "/" + percentEncode(hash), body));
  return HttpClient::statusOf(r);
}

Result<Json> ApiClient::createDeployment(std::string_view app, const Json& request) {
  return http_.call("POST", appPath(app, "/deployments"), &request);
}

Result<Json> ApiClient::redeploy(std::string_view deployment, const Json& request) {
  return http_.call("POST", deploymentPath(deployment, "/redeploy"), &request);
}

Result<Json> ApiClient::buildLog(std::string_view deployment) {
  return http_.call("GET", deploymentPath(deployment, "/build-log"));
}

std::string ApiClient::eventsPath(std::string_view deployment, std::string_view cursor) const {
  return deploymentPath(deployment, "/events") + (cursor.empty() ? "" : "?after=" + percentEncode(cursor));
}

Result<Json> ApiClient::listApps() { return http_.call("GET", "/v1/apps"); }

Result<Json> ApiClient::deleteApp(std::string_view app) { return http_.call("DELETE", appPath(app)); }

Result<Json> ApiClient::listDeployments(std::string_view app, size_t limit) {
  return http_.call("GET", appPath(app, "/deployments?limit=" + std::to_string(limit)));
}

Result<Json> ApiClient::listAliases(std::string_view app) { return http_.call("GET", appPath(app, "/aliases")); }

Result<Json> ApiClient::setAlias(std::string_view app, std::string_view alias, const Json& request) {
  return http_.call("PUT", appPath(app, "/aliases/" + percentEncode(alias)), &request);
}

Result<Json> ApiClient::promote(std::string_view app, const Json& request) {
  return http_.call("POST", appPath(app, "/promote"), &request);
}

Result<Json> ApiClient::rollback(std::string_view app, const Json& request) {
  return http_.call("POST", appPath(app, "/rollback"), &request);
}

Result<Json> ApiClient::collectGarbage(const Json& request) { return http_.call("POST", "/v1/gc", &request); }

Result<Json> ApiClient::instances(std::string_view app) {
  return http_.call("GET", app.empty() ? std::string("/v1/instances") : "/v1/instances?app=" + percentEncode(app));
}

Result<Json> ApiClient::whoami() { return http_.call("GET", "/v1/whoami"); }

Result<Json> ApiClient::createToken(const Json& request) { return http_.call("POST", "/v1/tokens", &request); }

Result<Json> ApiClient::listTokens() { return http_.call("GET", "/v1/tokens"); }

Result<Json> ApiClient::revokeToken(std::string_view name) {
  return http_.call("DELETE", "/v1/tokens/" + percentEncode(name));
}

Result<Json> ApiClient::audit(std::string_view app, size_t limit) {
  std::string path = "/v1/audit?limit=" + std::to_string(limit);
  if (!app.empty()) path += "&app=" + percentEncode(app);
  return http_.call("GET", path);
}

Result<Json> ApiClient::addDomain(const Json& request) { return http_.call("POST", "/v1/domains", &request); }

Result<Json> ApiClient::listDomains(std::string_view app) {
  return http_.call("GET", app.empty() ? std::string("/v1/domains") : "/v1/domains?app=" + percentEncode(app));
}

Result<Json> ApiClient::removeDomain(std::string_view host) {
  return http_.call("DELETE", "/v1/domains/" + percentEncode(host));
}

Result<Json> ApiClient::listCron(std::string_view app) { return http_.call("GET", appPath(app, "/cron")); }

Result<Json> ApiClient::listEnv(std::string_view app) { return http_.call("GET", appPath(app, "/env")); }

Result<Json> ApiClient::setEnv(std::string_view app, const Json& request) {
  return http_.call("PUT", appPath(app, "/env"), &request);
}

Result<Json> ApiClient::removeEnv(std::string_view app, std::string_view name, std::string_view alias) {
  return http_.call("DELETE", appPath(app, "/env/" + percentEncode(name)) +
                                  (alias.empty() ? "" : "?alias=" + percentEncode(alias)));
}

Result<Json> ApiClient::logs(std::string_view app, const LogQuery& q) {
  std::string path = appPath(app, "/logs?limit=" + std::to_string(q.limit));
  if (!q.deployment.empty()) path += "&deployment=" + percentEncode(q.deployment);
  if (!q.kind.empty()) path += "&kind=" + percentEncode(q.kind);
  if (!q.request_id.empty()) path += "&request=" + percentEncode(q.request_id);
  if (!q.grep.empty()) path += "&grep=" + percentEncode(q.grep);
  if (!q.status.empty()) path += "&status=" + percentEncode(q.status);
  if (q.since_ms) path += "&since=" + std::to_string(q.since_ms);
  if (q.until_ms) path += "&until=" + std::to_string(q.until_ms);
  if (q.after) path += "&after=" + std::to_string(*q.after);
  if (q.wait_s > 0) path += "&wait=" + std::to_string(q.wait_s);
  return http_.call("GET", path);
}

}  // namespace nubo::cli
