// Gateway: the data-plane Handler. Serves /_nubo/healthz for every host,
// resolves everything else with the Router and hands it to the runtime of
// the deployment it lands on: `static` is served here, code runtimes by
// runtime::Functions. Every response carries X-Nubo-Request-Id.
#pragma once

#include <optional>

#include "gateway/router.h"
#include "gateway/static_site.h"
#include "http/server.h"
#include "runtime/functions.h"

namespace nubo::gateway {

class Gateway final : public http::Handler {
 public:
  // `functions` may be null (no code runtimes: such deployments answer 501).
  Gateway(Router& router, StaticSite& site, runtime::Functions* functions)
      : router_(router), site_(site), functions_(functions) {}
  boost::asio::awaitable<http::Response> handle(const http::Request& req) override;

  // Where a request goes: answered here, or a function to call.
  struct Routed {
    std::optional<http::Response> response;
    std::shared_ptr<const DeploymentRoute> function;
    std::string_view path;
  };
  Routed route(const http::Request& req);

 private:
  Router& router_;
  StaticSite& site_;
  runtime::Functions* functions_;
};

}  // namespace nubo::gateway
