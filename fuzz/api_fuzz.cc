// Fuzzes the control API's JSON bodies through the real ControlApi over a
// real SQLite store and blob store (in a temp folder): the first byte picks
// an endpoint, the rest is the body. Every answer must be a clear 4xx or a
// success; a 500 (a broken invariant) or a crash is a finding.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "api/auth.h"
#include "api/control_api.h"
#include "api/deployer.h"
#include "blob/local_blob_store.h"
#include "blob/tree.h"
#include "common/sha256.h"
#include "common/clock.h"
#include "common/secret_box.h"
#include "logs/log_store.h"
#include "store/sqlite/sqlite_metadata_store.h"

namespace {

using namespace nubo;

constexpr const char* kToken = "fuzz-token";

std::string_view authorization(const void*, std::string_view name) {
  static const std::string value = std::string("Bearer ") + kToken;
  if (name == "x-nubo-console") return "1";  // (the console's sign-in is fuzzed too)
  return name == "authorization" || name == "Authorization" ? std::string_view(value) : std::string_view();
}
void noHeaders(const void*, std::vector<std::pair<std::string_view, std::string_view>>&) {}

struct World {
  World() {
    char tmpl[] = "/tmp/nubo-fuzz-api-XXXXXX";
    dir = ::mkdtemp(tmpl);
    store = std::move(store::SqliteMetadataStore::open(dir + "/meta.db", clock)).value();
    blobs = std::move(blob::LocalBlobStore::create(dir + "/blobs")).value();
    auth = std::make_unique<api::Authenticator>(*store, clock);
    store::TokenRecord rec;
    rec.name = "fuzz";
    rec.role = "admin";
    if (!auth->registerToken(kToken, rec).ok()) __builtin_trap();
    deployer = std::make_unique<api::Deployer>(*store, *blobs, clock);
    logs = std::make_unique<logs::LogStore>(dir + "/logs");
    build_logs = std::make_unique<logs::LogStore>(dir + "/build-logs");
    api = std::make_unique<api::ControlApi>(*store, *deployer, *auth, clock, secrets, api::PublicUrls{}, nullptr, nullptr, *logs,
                                            *build_logs);
    // Something to point at: one static deployment of an empty-ish site.
    std::string index = "<p>hi</p>";
    std::string h = sha256Hex(index);
    (void)blobs->put(h, index);
    blob::Tree t;
    t.entries.push_back({"index.html", blob::EntryKind::kFile, index.size(), h});
    std::string encoded = *blob::encodeTree(t);
    root = sha256Hex(encoded);
    (void)blobs->put(root, encoded);
    api::CreateRequest cr;
    cr.app = "fz";
    cr.root = root;
    cr.actor = "fuzz";
    deployment = std::move(deployer->createDeployment(cr)).value().id;
  }
  ~World() {
    api.reset();
    store.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // the fuzzer exits through exit(): this runs
  }
  SystemClock clock;
  SecretBox secrets = std::move(SecretBox::fromKeys(std::string(32, 'k'))).value();
  std::string dir, root, deployment;
  std::unique_ptr<store::SqliteMetadataStore> store;
  std::unique_ptr<blob::LocalBlobStore> blobs;
  std::unique_ptr<api::Authenticator> auth;
  std::unique_ptr<api::Deployer> deployer;
  std::unique_ptr<logs::LogStore> logs, build_logs;
  std::unique_ptr<api::ControlApi> api;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World w;
  if (size == 0) return 0;
  const std::pair<const char*, std::string> endpoints[] = {
      {"POST", "/v1/negotiate"},
      {"POST", "/v1/apps/fz/deployments"},
      {"PUT", "/v1/apps/fz/aliases/staging"},
      {"POST", "/v1/apps/fz/promote"},
      {"POST", "/v1/apps/fz/rollback"},
      {"POST", "/v1/deployments/" + w.deployment + "/redeploy"},
      {"PUT", "/v1/trees/" + w.root},
      {"POST", "/v1/apps/other/deployments"},
      {"POST", "/v1/tokens"},
      {"POST", "/v1/domains"},
      {"PUT", "/v1/apps/fz/env"},
      {"POST", "/v1/session"},
      {"GET", "/v1/apps/fz/logs/events"},  // the body is the query: the log search's parameters (the stream is not read)
      {"GET", "/v1/apps/fz/stats"},        // (the same)
  };
  const auto& [method, path] = endpoints[data[0] % (sizeof endpoints / sizeof endpoints[0])];
  std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  http::Request req;
  req.method = method;
  req.target = path;
  req.path = path;
  req.host = "localhost";
  if (method == std::string_view("GET")) {
    req.query = body;
  } else {
    req.body = body;
  }
  req.lookup_ = &authorization;
  req.list_ = &noHeaders;
  // The handler runs to completion on a context of its own (no endpoint
  // fuzzed here waits: no deployment is started).
  http::Response r;
  boost::asio::io_context ioc;
  boost::asio::co_spawn(
      ioc, [&]() -> boost::asio::awaitable<void> { r = co_await w.api->handle(req); }, boost::asio::detached);
  ioc.run();
  if (r.status >= 500 && r.status != 501 && r.status != 503) __builtin_trap();
  return 0;
}
