// ControlApi: the control plane's REST handler (/v1/..., JSON, Bearer auth),
// documented endpoint by endpoint in docs/api.md.
//
// It parses and answers HTTP only; the work is done by Deployer and the
// MetadataStore. Every request goes through one table of endpoints
// (endpoints()), each declaring the role it needs (only the health checks
// and, unless --metrics-token is set, `GET /metrics` need no token) and which app it acts on, checked against the token's
// scope before the endpoint runs (and before a body is read); lists show a
// scoped token only its apps. Every change is appended to the audit log.
// Every error is {"error":{"code","message"}} with the HTTP status mapped
// from the Status code (common/status.h); a path with no such method is
// 405 with Allow.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "api/auth.h"
#include "api/deployer.h"
#include "common/readiness.h"
#include "common/secret_box.h"
#include "cron/cron_scheduler.h"
#include "http/server.h"
#include "logs/log_store.h"
#include "metrics/history.h"
#include "metrics/metrics.h"
#include "runtime/functions.h"

namespace nubo::api {

// How the data plane is reached, for the URLs the API returns.
struct PublicUrls {
  std::string base_domain = "localhost";
  std::string scheme = "http";
  int port = 8080;  // data-plane port; omitted from URLs when 80

  std::string appUrl(std::string_view app) const;
  std::string deploymentUrl(std::string_view app, std::string_view id) const;
  std::string aliasUrl(std::string_view app, std::string_view alias) const;
};

// What the control plane says of the server's health and counts.
struct Observability {
  metrics::Metrics* metrics = nullptr;  // GET /metrics (null: 404)
  // When set, GET /metrics needs "Authorization: Bearer <metrics_token>".
  std::string metrics_token;
  const Readiness* readiness = nullptr;  // GET /_nubo/readyz (null: always ready)
  metrics::History* history = nullptr;   // GET /v1/stats, /v1/apps/{app}/stats (null: empty)
  // GET /v1/nodes: the fleet's nodes (null: a single node, 404).
  std::function<Result<Json>()> nodes;
};

class ControlApi final : public http::Handler {
 public:
  // Called after an app is removed from the store, to stop what still runs
  // for it (its builds).
  using AppRemoved = std::function<void(const std::string& app)>;
  // Whether the data plane serves a deployment (the router has it): a
  // build's event stream reports READY only then, so a client that saw
  // READY is served the new deployment.
  using Served = std::function<bool(const std::string& deployment)>;

  // `functions` may be null (no code runtimes: no instances to list), and
  // `cron` (no schedules to show). `secrets` seals the secret env values
  // the API is given.
  ControlApi(store::MetadataStore& store, Deployer& deployer, Authenticator& auth, Clock& clock,
             const SecretBox& secrets, PublicUrls urls, runtime::Functions* functions, cron::CronScheduler* cron,
             logs::LogStore& logs, logs::LogStore& build_logs, AppRemoved app_removed = nullptr,
             Served served = nullptr, Observability observability = {});
  boost::asio::awaitable<http::Response> handle(const http::Request& req) override;
  // Authenticates from the head, before any body is read, when the
  // endpoint (or an unknown path) needs a token; JSON bodies get
  // kMaxJsonBody, tree objects kMaxTreeBody, and only file blobs the
  // server's upload limit (streamed to a temp file in the blob store).
  http::BodyPlan planBody(const http::Request& head) override;

  static constexpr uint64_t kMaxJsonBody = 4u << 20;
  static constexpr uint64_t kMaxTreeBody = 32u << 20;

  // A request as an endpoint sees it: the values of the path's "{}"
  // segments, in order, and who sent it (empty for public endpoints).
  struct Call {
    const http::Request& req;
    std::vector<std::string> params;
    std::string actor;
    Principal who;
  };
  // The API, one entry per endpoint: every request is routed through this
  // table, and only the endpoints that say so are answered without a token
  // (none authenticates or authorizes by itself). A path under /v1/apps/{}
  // has its app name checked before the endpoint runs.
  struct Endpoint {
    enum class Body { kNone, kJson, kTree, kBlob };
    // The least role that may call it (kPublic: no token needed).
    enum class Access { kPublic, kView, kDeploy, kAdmin };
    // Which app a call acts on, checked against the token's apps: none
    // (not about one app, or the endpoint shows only the token's apps), the
    // path's first "{}" (an app), or the app of the deployment named there
    // (a deployment of another app is "not found" to a scoped token).
    enum class Scope { kNone, kApp, kDeployment };
    std::string_view method;
    std::string_view path;  // "{}": one segment
    Access access;
    Scope scope;
    std::string_view what;  // for refusals: "deploying", "listing tokens", ...
    Body body;
    // One of the two is set.
    Result<http::Response> (ControlApi::*answer)(const Call&);
    boost::asio::awaitable<http::Response> (ControlApi::*answer_async)(const Call&);
  };
  static const std::vector<Endpoint>& endpoints();

 private:
  struct Match {
    const Endpoint* endpoint = nullptr;  // null: none for this method and path
    std::vector<std::string> params;
    std::string allowed;  // the methods the path has (empty: no such path)
    bool path_public = false;  // some endpoint of this path needs no token
    // Whether the request must carry the token before anything is said.
    bool needsToken() const {
      return endpoint ? endpoint->access != Endpoint::Access::kPublic : !path_public;
    }
  };
  static Match match(std::string_view method, std::string_view path);
  // Who sent the request, when it may call the endpoint on its app:
  // kUnauthenticated, kPermissionDenied (role or app), kNotFound (a
  // deployment a scoped token may not see).
  // A request authenticated by the console's session cookie (no
  // Authorization header) must show it comes from the console: kPermissionDenied
  // for a change without X-Nubo-Console, or from another Origin.
  Result<Principal> authorize(const http::Request& req, const Match& m);
  static Status checkConsoleRequest(const http::Request& req);

  // Appends a change to the audit log (a failure is logged, not returned:
  // the change itself was made).
  void audit(const Call& call, std::string_view action, std::string_view app, std::string_view target,
             Json detail = Json::object());
  // The apps a list shows the caller: nullopt for every app.
  static std::optional<std::vector<std::string>> visibleApps(const Principal& who);

  Json deploymentJson(const store::Deployment& d);
  Json domainJson(const store::Domain& d) const;
  // A deployment just created STARTING (code checked before it goes live)
  // is answered once the check is over and the data plane serves it, or
  // as STARTING after kStartWait (the client then follows its /events).
  boost::asio::awaitable<http::Response> answerWhenStarted(http::Response created);
  static constexpr std::chrono::seconds kStartWait{20};

  // The endpoints (docs/api.md).
  Result<http::Response> healthz(const Call& call);
  Result<http::Response> readyz(const Call& call);
  Result<http::Response> consolePage(const Call& call);
  Result<http::Response> serveLogEvents(const Call& call);
  Result<http::Response> openSession(const Call& call);
  Result<http::Response> appStats(const Call& call);
  Result<http::Response> allStats(const Call& call);
  Result<http::Response> closeSession(const Call& call);
  Result<http::Response> serveMetrics(const Call& call);
  Result<http::Response> negotiate(const Call& call);
  // PUT /v1/blobs/{hash} with a streamed body: written to the store as it
  // arrives, checked against its name at the end.
  boost::asio::awaitable<http::Response> putBlob(const Call& call);
  Result<http::Response> hasObject(const Call& call);
  Result<http::Response> putTree(const Call& call);
  Result<http::Response> collectGarbage(const Call& call);
  Result<http::Response> listInstances(const Call& call);
  Result<http::Response> listNodes(const Call& call);
  Result<http::Response> getDeployment(const Call& call);
  Result<http::Response> buildLog(const Call& call);
  // GET /v1/deployments/{id}/events: the build's log and state changes as
  // server-sent events, until the deployment is READY or FAILED.
  Result<http::Response> serveBuildEvents(const Call& call);
  boost::asio::awaitable<http::Response> redeploy(const Call& call);
  Result<http::Response> listApps(const Call& call);
  Result<http::Response> getApp(const Call& call);
  Result<http::Response> deleteApp(const Call& call);
  Result<http::Response> listDeployments(const Call& call);
  boost::asio::awaitable<http::Response> createDeployment(const Call& call);
  // GET /v1/apps/{app}/logs: waits (on a timer, no thread held) when asked to follow.
  boost::asio::awaitable<http::Response> serveLogs(const Call& call);
  Result<http::Response> listAliases(const Call& call);
  Result<http::Response> setAlias(const Call& call);
  Result<http::Response> aliasHistory(const Call& call);
  Result<http::Response> promote(const Call& call);
  Result<http::Response> rollback(const Call& call);
  // Tokens, the audit log and domains (team_endpoints.cc).
  Result<http::Response> whoami(const Call& call);
  Result<http::Response> createToken(const Call& call);
  Result<http::Response> listTokens(const Call& call);
  Result<http::Response> revokeToken(const Call& call);
  Result<http::Response> listAudit(const Call& call);
  Result<http::Response> addDomain(const Call& call);
  Result<http::Response> listDomains(const Call& call);
  Result<http::Response> removeDomain(const Call& call);
  // Env, secrets and cron schedules (env_endpoints.cc).
  Result<http::Response> listEnv(const Call& call);
  boost::asio::awaitable<http::Response> setEnv(const Call& call);
  Result<http::Response> removeEnv(const Call& call);
  Result<http::Response> listCron(const Call& call);

  store::MetadataStore& store_;
  Deployer& deployer_;
  Authenticator& auth_;
  Clock& clock_;
  const SecretBox& secrets_;
  PublicUrls urls_;
  runtime::Functions* functions_;
  cron::CronScheduler* cron_;
  logs::LogStore& logs_;
  logs::LogStore& build_logs_;
  AppRemoved app_removed_;
  Served served_;
  const Observability observability_;
};

}  // namespace nubo::api
