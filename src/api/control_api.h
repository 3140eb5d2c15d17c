// ControlApi: the control plane's REST handler (/v1/..., JSON, Bearer auth),
// documented endpoint by endpoint in docs/api.md.
//
// It parses and answers HTTP only; the work is done by Deployer and the
// MetadataStore. Every request goes through one table of endpoints
// (endpoints()), each declaring whether it needs a token: only
// `GET /healthz` does not. Every error is {"error":{"code","message"}} with
// the HTTP status mapped from the Status code (common/status.h); a path
// with no such method is 405 with Allow.
#pragma once

#include <functional>
#include <string>

#include "api/auth.h"
#include "api/deployer.h"
#include "http/server.h"
#include "logs/log_store.h"
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

class ControlApi final : public http::Handler {
 public:
  // Called after an app is removed from the store, to stop what still runs
  // for it (its builds).
  using AppRemoved = std::function<void(const std::string& app)>;
  // Whether the data plane serves a deployment (the router has it): a
  // build's event stream reports READY only then, so a client that saw
  // READY is served the new deployment.
  using Served = std::function<bool(const std::string& deployment)>;

  // `functions` may be null (no code runtimes: no instances to list).
  ControlApi(store::MetadataStore& store, Deployer& deployer, Authenticator& auth, PublicUrls urls,
             runtime::Functions* functions, logs::LogStore& logs, logs::LogStore& build_logs,
             AppRemoved app_removed = nullptr, Served served = nullptr);
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
  };
  // The API, one entry per endpoint: every request is routed through this
  // table, and only the endpoints that say so are answered without a token
  // (none authenticates by itself). A path under /v1/apps/{} has its app
  // name checked before the endpoint runs.
  struct Endpoint {
    enum class Body { kNone, kJson, kTree, kBlob };
    std::string_view method;
    std::string_view path;  // "{}": one segment
    bool needs_token;
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
    bool needsToken() const { return endpoint ? endpoint->needs_token : !path_public; }
  };
  static Match match(std::string_view method, std::string_view path);

  Json deploymentJson(const store::Deployment& d);
  // A deployment just created STARTING (code checked before it goes live)
  // is answered once the check is over and the data plane serves it, or
  // as STARTING after kStartWait (the client then follows its /events).
  boost::asio::awaitable<http::Response> answerWhenStarted(http::Response created);
  static constexpr std::chrono::seconds kStartWait{20};

  // The endpoints (docs/api.md).
  Result<http::Response> healthz(const Call& call);
  Result<http::Response> negotiate(const Call& call);
  // PUT /v1/blobs/{hash} with a streamed body: written to the store as it
  // arrives, checked against its name at the end.
  boost::asio::awaitable<http::Response> putBlob(const Call& call);
  Result<http::Response> hasObject(const Call& call);
  Result<http::Response> putTree(const Call& call);
  Result<http::Response> collectGarbage(const Call& call);
  Result<http::Response> listInstances(const Call& call);
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

  store::MetadataStore& store_;
  Deployer& deployer_;
  Authenticator& auth_;
  PublicUrls urls_;
  runtime::Functions* functions_;
  logs::LogStore& logs_;
  logs::LogStore& build_logs_;
  AppRemoved app_removed_;
  Served served_;
};

}  // namespace nubo::api
