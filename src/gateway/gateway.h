// Gateway: the data-plane Handler. Serves /_nubo/healthz for every host,
// resolves everything else with the Router and hands it to the runtime of
// the deployment it lands on (today: `static`).
#pragma once

#include "gateway/router.h"
#include "gateway/static_site.h"
#include "http/server.h"

namespace nubo::gateway {

class Gateway final : public http::Handler {
 public:
  Gateway(Router& router, StaticSite& site) : router_(router), site_(site) {}
  boost::asio::awaitable<http::Response> handle(const http::Request& req) override;

  // The synchronous part of handle(), for tests and benchmarks.
  http::Response route(const http::Request& req);

 private:
  Router& router_;
  StaticSite& site_;
};

}  // namespace nubo::gateway
