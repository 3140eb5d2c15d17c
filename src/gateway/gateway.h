// Gateway: the data-plane Handler. Serves /_nubo/healthz (alive) and
// /_nubo/readyz (the server's Readiness: 200, or 503 naming what it waits
// for) for every host,
// resolves everything else with the Router and hands it to the runtime of
// the deployment it lands on: `static` is served here, code runtimes by
// runtime::Functions. Every response carries X-Nubo-Request-Id, and every
// response of a deployment X-Nubo-Deployment (which one served it); when an
// alias's traffic split chose the deployment, a cookie keeps the client on
// it (Router::resolve). Each request is counted in the metrics, and each
// one a deployment answered is recorded in its app's log (an access record).
#pragma once

#include <functional>
#include <optional>

#include "common/readiness.h"
#include "gateway/router.h"
#include "logs/log_store.h"
#include "gateway/static_site.h"
#include "gateway/function_proxy.h"
#include "http/server.h"

namespace nubo::gateway {

struct GatewayOptions {
  // Addresses of front proxies whose X-Forwarded-* headers are kept (and
  // extended); anyone else's are replaced.
  std::vector<std::string> trusted_proxies;
  WebSocketLimits websocket;  // of WebSockets to functions
  // What the server's own cron requests carry in X-Nubo-Cron-Key; only a
  // request with it passes X-Nubo-Cron to a function (empty: none does).
  std::string cron_key;
  metrics::Metrics* metrics = nullptr;     // where requests and failures count (may be null)
  const Readiness* readiness = nullptr;    // what /_nubo/readyz reports (null: always ready)
  // Where each request to a deployment is recorded (stream "request", with
  // the app's function output; null: nowhere).
  logs::LogStore* access_log = nullptr;
  // Brings what a static site needs to this node, off the data plane (a
  // fleet's blob store; null: every blob is local). A static file not here
  // yet waits for it rather than being read over the network on a
  // data-plane thread.
  std::function<boost::asio::awaitable<Status>(const SiteFetch& what)> fetch;
};

class Gateway final : public http::Handler {
 public:
  // `functions` may be null (no code runtimes: such deployments answer 501).
  Gateway(Router& router, StaticSite& site, runtime::Functions* functions, GatewayOptions options = {})
      : router_(router), site_(site), opts_(std::move(options)) {
    if (functions) proxy_.emplace(*functions, opts_.websocket, opts_.metrics);
  }
  boost::asio::awaitable<http::Response> handle(const http::Request& req) override;

  // Where a request goes: answered here, or a function to call.
  struct Routed {
    std::optional<http::Response> response;
    std::shared_ptr<const DeploymentRoute> function;
    std::shared_ptr<const DeploymentRoute> route;  // the deployment that answers, if one does
    std::string_view path;
    std::string deployment;  // the deployment that answers ("" when none does)
    std::string set_cookie;  // from a traffic split
    uint32_t metrics_app = metrics::Metrics::kNoApp;
    SiteFetch fetch;  // what to bring to this node before asking again
  };
  Routed route(const http::Request& req);

  // What a function is told of where the request came from, as a proper
  // proxy says it: X-Forwarded-For, -Proto, -Host, and -Prefix ("/<app>")
  // when the app is reached by path. Strings, then the header list
  // pointing into them.
  struct Forwarded {
    std::string for_, proto, host, prefix;
    std::string cron;  // X-Nubo-Cron, from the server's own cron only
    runtime::protocol::HeaderList list() const;
  };
  Forwarded forwarded(const http::Request& req, std::string_view routed_path) const;

 private:
  Router& router_;
  StaticSite& site_;
  // Appends the access record of a request `d` answered.
  void record(const http::Request& req, const http::Response& r, const DeploymentRoute& d, const std::string& rid,
              std::chrono::steady_clock::duration took);

  const GatewayOptions opts_;
  std::optional<FunctionProxy> proxy_;
};

}  // namespace nubo::gateway
