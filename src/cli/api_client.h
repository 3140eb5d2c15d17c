// ApiClient: the control API (docs/api.md) as typed calls, so that no
// command builds a URL by hand: every path segment and query value is
// percent-encoded here (an app name, alias or cursor can never add a path
// segment or a query parameter of its own).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "cli/http_client.h"
#include "common/json.h"
#include "common/status.h"

namespace nubo::cli {

class ApiClient {
 public:
  explicit ApiClient(HttpClient& http) : http_(http) {}

  Result<Json> negotiate(const Json& request);
  // PUT /v1/blobs/{hash} or /v1/trees/{hash} (`kind`: "blobs" or "trees").
  Status putObject(std::string_view kind, std::string_view hash, std::string_view body);
  Result<Json> createDeployment(std::string_view app, const Json& request);
  Result<Json> redeploy(std::string_view deployment, const Json& request);
  Result<Json> buildLog(std::string_view deployment);
  // The path of a deployment's events (server-sent), after `cursor` if set.
  std::string eventsPath(std::string_view deployment, std::string_view cursor) const;
  Result<Json> listApps();
  Result<Json> deleteApp(std::string_view app);
  Result<Json> listDeployments(std::string_view app, size_t limit);
  Result<Json> listAliases(std::string_view app);
  Result<Json> setAlias(std::string_view app, std::string_view alias, const Json& request);
  Result<Json> promote(std::string_view app, const Json& request);
  Result<Json> rollback(std::string_view app, const Json& request);
  Result<Json> collectGarbage(const Json& request);
  // Every instance, or one app's.
  Result<Json> instances(std::string_view app);

  Result<Json> whoami();
  Result<Json> createToken(const Json& request);
  Result<Json> listTokens();
  Result<Json> revokeToken(std::string_view name);
  // The audit log, newest first: every app the token sees, or one.
  Result<Json> audit(std::string_view app, size_t limit);

  Result<Json> addDomain(const Json& request);
  Result<Json> listDomains(std::string_view app);
  Result<Json> removeDomain(std::string_view host);

  Result<Json> listCron(std::string_view app);
  Result<Json> listEnv(std::string_view app);
  Result<Json> setEnv(std::string_view app, const Json& request);
  Result<Json> removeEnv(std::string_view app, std::string_view name, std::string_view alias);

  struct LogQuery {
    std::string deployment;         // only its lines (empty: all)
    std::string kind;               // "requests", "output" or "" (all)
    std::string request_id, grep, status;
    int64_t since_ms = 0, until_ms = 0;  // 0: no bound
    std::optional<uint64_t> after;  // a cursor from an earlier page
    size_t limit = 100;
    int wait_s = 0;  // with `after`: wait up to this long for new lines
  };
  Result<Json> logs(std::string_view app, const LogQuery& q);

 private:
  HttpClient& http_;
};

}  // namespace nubo::cli
