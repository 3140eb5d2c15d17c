// ControlApi: the control plane's REST handler (/v1/..., JSON, Bearer auth),
// documented endpoint by endpoint in docs/api.md.
//
// It parses and answers HTTP only; the work is done by Deployer and the
// MetadataStore. Every error is {"error":{"code","message"}} with the HTTP
// status mapped from the Status code (common/status.h). `GET /healthz` needs
// no token.
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
  // Authenticates from the head, before any body is read (handle() checks
  // the token of every request, with a body or not); JSON bodies get
  // kMaxJsonBody, tree objects kMaxTreeBody, and only file blobs the
  // server's upload limit (streamed to a temp file in the blob store).
  http::BodyPlan planBody(const http::Request& head) override;

  static constexpr uint64_t kMaxJsonBody = 4u << 20;
  static constexpr uint64_t kMaxTreeBody = 32u << 20;

  // The synchronous part of handle().
  http::Response route(const http::Request& req);

 private:
  Result<http::Response> dispatch(const http::Request& req, const std::string& actor);
  Json deploymentJson(const store::Deployment& d);
  // GET /v1/apps/{app}/logs: waits (on a timer, no thread held) when asked to follow.
  boost::asio::awaitable<http::Response> serveLogs(const http::Request& req, std::string app);
  // GET /v1/deployments/{id}/events: the build's log and state changes as
  // server-sent events, until the deployment is READY or FAILED.
  http::Response serveBuildEvents(const http::Request& req, const std::string& id);
  // A deployment just created STARTING (code checked before it goes live)
  // is answered once the check is over and the data plane serves it, or
  // as STARTING after kStartWait (the client then follows its /events).
  boost::asio::awaitable<http::Response> answerWhenStarted(http::Response created);
  static constexpr std::chrono::seconds kStartWait{20};
  // PUT /v1/blobs/{hash} with a streamed body: written to the store as it
  // arrives, checked against its name at the end.
  boost::asio::awaitable<http::Response> receiveBlob(const http::Request& req, std::string hash);

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
