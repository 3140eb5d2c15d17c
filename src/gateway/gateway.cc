#include "gateway/gateway.h"

namespace nubo::gateway {

using http::Response;

boost::asio::awaitable<Response> Gateway::handle(const http::Request& req) { co_return route(req); }

Response Gateway::route(const http::Request& req) {
  if (req.path.substr(0, 7) == "/_nubo/") {
    if (req.path == "/_nubo/healthz") return Response::text(200, "ok\n");
    return Response::text(404, "not found: /_nubo/ is reserved by the platform\n");
  }
  auto resolved = router_.resolve(req.host, req.path);
  if (!resolved.ok()) {
    return Response::text(httpStatusFor(resolved.status().code()), resolved.status().message() + "\n");
  }
  if (resolved->kind == Resolved::Kind::kRedirect) {
    std::string location = resolved->location;
    if (!req.query.empty()) location += "?" + std::string(req.query);
    Response r = Response::text(308, "moved to " + location + "\n");
    r.header("location", std::move(location));
    return r;
  }
  const DeploymentRoute& d = *resolved->deployment;
  if (d.runtime == "static") return site_.serve(d, resolved->path, resolved->immutable, req);
  return Response::text(501, "deployment " + d.id + " uses runtime \"" + d.runtime +
                                 "\", which this server cannot run yet\n");
}

}  // namespace nubo::gateway
