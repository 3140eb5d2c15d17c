#include "gateway/gateway.h"

#include <algorithm>
#include <random>

#include "common/clock.h"
#include "common/ids.h"

namespace nubo::gateway {

using http::Response;

namespace {

// 16 hex characters; unique enough to find a request in the logs, and cheap.
std::string requestId() {
  thread_local std::mt19937_64 rng([] {
    std::string seed = randomBytes(8);
    uint64_t v = 0;
    for (char c : seed) v = (v << 8) | static_cast<uint8_t>(c);
    return v;
  }());
  static constexpr char kHex[] = "0123456789abcdef";
  uint64_t v = rng();
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) out[static_cast<size_t>(i)] = kHex[v & 0xf];
  return out;
}

}  // namespace

boost::asio::awaitable<Response> Gateway::handle(const http::Request& req) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string rid = requestId();
  Routed routed = route(req);
  // (The index's trees, then the file: a few rounds at most.)
  for (int tries = 0; routed.fetch.needed(); ++tries) {
    const SiteFetch what = std::move(routed.fetch);
    // (No co_await inside a conditional expression: GCC 12 frees its
    // temporaries wrongly.)
    Status fetched = Unavailable("its files keep leaving this node's blob cache; raise --blob-cache-mb");
    if (tries < 4) fetched = co_await opts_.fetch(what);
    if (!fetched.ok()) {
      routed.fetch = {};
      routed.response = Response::text(httpStatusFor(fetched.code()),
                                       "the deployment's files could not be brought to this node: " + fetched.message() + "\n");
      break;
    }
    routed = route(req);
  }
  Response r;
  if (routed.response) {
    r = std::move(*routed.response);
  } else if (!proxy_) {
    r = Response::text(501, "deployment " + routed.function->id + " uses runtime \"" + std::string(runtimeName(routed.function->kind)) +
                                "\", which this server cannot run\n");
  } else {
    auto target = routed.function;  // keeps the route alive across the call
    Forwarded fwd = forwarded(req, routed.path);
    r = co_await proxy_->serve(target->spec, routed.path, req, rid, fwd.list());
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  if (opts_.access_log && routed.route) record(req, r, *routed.route, rid, took);
  if (!routed.deployment.empty()) r.header("x-nubo-deployment", std::move(routed.deployment));
  if (!routed.set_cookie.empty()) r.header("set-cookie", std::move(routed.set_cookie));
  r.header("x-nubo-request-id", std::move(rid));
  if (opts_.metrics) opts_.metrics->request(routed.metrics_app, r.status, took);
  co_return r;
}

void Gateway::record(const http::Request& req, const Response& r, const DeploymentRoute& d, const std::string& rid,
                     std::chrono::steady_clock::duration took) {
  bool cold = false;
  for (const auto& [name, value] : r.headers) cold |= name == "x-nubo-cold-start";
  std::optional<uint64_t> bytes;
  if (r.lengthKnown() && r.kind != Response::BodyKind::kUpgrade) bytes = r.contentLength();
  double ms = std::chrono::duration<double, std::milli>(took).count();
  opts_.access_log->appendAccess(d.app, wallMillis(), d.id, rid, req.method, req.path, r.status, ms, bytes, cold);
}

Gateway::Forwarded Gateway::forwarded(const http::Request& req, std::string_view routed_path) const {
  Forwarded f;
  const auto& proxies = opts_.trusted_proxies;
  bool trusted = std::find(proxies.begin(), proxies.end(), req.peer) != proxies.end();
  auto sent = [&](std::string_view name) { return trusted ? req.header(name) : std::string_view(); };
  f.for_ = sent("x-forwarded-for").empty() ? std::string(req.peer)
                                           : std::string(sent("x-forwarded-for")) + ", " + std::string(req.peer);
  // (No key set: nobody's X-Nubo-Cron passes.)
  if (!opts_.cron_key.empty() && sameSecret(req.header("x-nubo-cron-key"), opts_.cron_key)) {
    f.cron = std::string(req.header("x-nubo-cron"));
  }
  f.proto = sent("x-forwarded-proto").empty() ? "http" : std::string(sent("x-forwarded-proto"));
  f.host = sent("x-forwarded-host").empty() ? std::string(req.header("host")) : std::string(sent("x-forwarded-host"));
  // Path routing: "/shop/cart" reached the app as "/cart".
  if (req.path.size() > routed_path.size() && req.path.substr(req.path.size() - routed_path.size()) == routed_path) {
    f.prefix = std::string(sent("x-forwarded-prefix")) + std::string(req.path.substr(0, req.path.size() - routed_path.size()));
  } else if (!sent("x-forwarded-prefix").empty()) {
    f.prefix = std::string(sent("x-forwarded-prefix"));
  }
  return f;
}

runtime::protocol::HeaderList Gateway::Forwarded::list() const {
  runtime::protocol::HeaderList l = {{"x-forwarded-for", for_}, {"x-forwarded-proto", proto}};
  if (!host.empty()) l.emplace_back("x-forwarded-host", host);
  if (!prefix.empty()) l.emplace_back("x-forwarded-prefix", prefix);
  if (!cron.empty()) l.emplace_back("x-nubo-cron", cron);
  return l;
}

Gateway::Routed Gateway::route(const http::Request& req) {
  Routed out;
  if (req.path.substr(0, 7) == "/_nubo/") {
    if (req.path == "/_nubo/healthz") {
      out.response = Response::text(200, "ok\n");
    } else if (req.path == "/_nubo/readyz") {
      auto r = opts_.readiness ? opts_.readiness->report() : Readiness::Report{true, "ready\n"};
      out.response = Response::text(r.ready ? 200 : 503, r.text);
    } else {
      out.response = Response::text(404, "not found: /_nubo/ is reserved by the platform\n");
    }
    return out;
  }
  SplitHints hints{&req, [](const void* r, std::string_view name) {
                      return static_cast<const http::Request*>(r)->header(name);
                    }};
  auto resolved = router_.resolve(req.host, req.path, hints);
  if (!resolved.ok()) {
    out.response = Response::text(httpStatusFor(resolved.status().code()), resolved.status().message() + "\n");
    return out;
  }
  if (resolved->kind == Resolved::Kind::kRedirect) {
    out.response = Response::redirect(resolved->location, req.query);
    return out;
  }
  const DeploymentRoute& d = *resolved->deployment;
  out.deployment = d.id;
  out.metrics_app = d.metrics_app;
  out.route = resolved->deployment;
  out.set_cookie = std::move(resolved->set_cookie);
  if (!runtimeTraits(d.kind).runsCode()) {
    out.response = site_.serve(d, resolved->path, resolved->immutable, req, opts_.fetch ? &out.fetch : nullptr);
    return out;
  }
  out.function = resolved->deployment;
  out.path = resolved->path;
  return out;
}

}  // namespace nubo::gateway
