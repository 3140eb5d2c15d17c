// Gateway: the data-plane Handler. Serves /_nubo/healthz for every host,
// resolves everything else with the Router and hands it to the runtime of
// the deployment it lands on: `static` is served here, code runtimes by
// runtime::Functions. Every response carries X-Nubo-Request-Id, and every
// response of a deployment X-Nubo-Deployment (which one served it); when an
// alias's traffic split chose the deployment, a cookie keeps the client on
// it (Router::resolve).
#pragma once

#include <optional>

#include "gateway/router.h"
#include "gateway/static_site.h"
#include "gateway/function_proxy.h"
#include "http/server.h"

namespace nubo::gateway {

class Gateway final : public http::Handler {
 public:
  // `functions` may be null (no code runtimes: such deployments answer 501).
  // `trusted_proxies`: addresses of front proxies whose X-Forwarded-*
  // headers are kept (and extended); anyone else's are replaced.
  // `websocket`: the limits of WebSockets to functions.
  // `cron_key`: what the server's own cron requests carry in
  // X-Nubo-Cron-Key; only a request with it passes X-Nubo-Cron to a
  // function (empty: none does).
  Gateway(Router& router, StaticSite& site, runtime::Functions* functions,
          std::vector<std::string> trusted_proxies = {}, WebSocketLimits websocket = {}, std::string cron_key = "")
      : router_(router), site_(site), trusted_proxies_(std::move(trusted_proxies)), cron_key_(std::move(cron_key)) {
    if (functions) proxy_.emplace(*functions, websocket);
  }
  boost::asio::awaitable<http::Response> handle(const http::Request& req) override;

  // Where a request goes: answered here, or a function to call.
  struct Routed {
    std::optional<http::Response> response;
    std::shared_ptr<const DeploymentRoute> function;
    std::string_view path;
    std::string deployment;  // the deployment that answers ("" when none does)
    std::string set_cookie;  // from a traffic split
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
  std::optional<FunctionProxy> proxy_;
  std::vector<std::string> trusted_proxies_;
  std::string cron_key_;
};

}  // namespace nubo::gateway
