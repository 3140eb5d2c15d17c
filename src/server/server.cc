#include "build/build_queue.h"
#include "build/builtin_builders.h"
#include "server/server.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>
#include <vector>

#include "api/auth.h"
#include "api/control_api.h"
#include "api/deployer.h"
#include "blob/local_blob_store.h"
#include "common/client_config.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/json.h"
#include "common/readiness.h"
#include "common/secret_box.h"
#include "common/sha256.h"
#include "cron/cron_scheduler.h"
#include "cron/loopback_fire.h"
#include "gateway/file_cache.h"
#include "gateway/gateway.h"
#include "gateway/router.h"
#include "gateway/static_site.h"
#include "http/server.h"
#include "runtime/code_store.h"
#include "gateway/deployment_spec.h"
#include "runtime/functions.h"
#include "runtime/start_check.h"
#include "runtime/launcher.h"
#include "runtime/sandbox.h"
#include "logs/log_store.h"
#include "metrics/history.h"
#include "metrics/metrics.h"
#include "metrics/process_stats.h"
#include "server/data_dir.h"
#include "fleet/node_registry.h"
#include "server/fleet_setup.h"
#include "store/sqlite/sqlite_metadata_store.h"

namespace nubo::server {
namespace asio = boost::asio;

namespace {

// MemAvailable from /proc/meminfo, in bytes (0 when unknown).
uint64_t availableMemory() {
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) == 0) return std::strtoull(line.c_str() + 13, nullptr, 10) << 10;
  }
  return 0;
}

}  // namespace

namespace {

// On the very first start: an admin token. The token file is written before
// its hash is stored, so a crash in between leaves no unusable token.
Status ensureAdminToken(const std::string& data_dir, store::MetadataStore& store, api::Authenticator& auth,
                        Clock& clock) {
  ASSIGN_OR_RETURN(size_t count, store.countTokens());
  if (count > 0) return Status::Ok();
  std::string token = newToken();
  std::string path = data_dir + "/admin.token";
  RETURN_IF_ERROR(writeFileAtomic(path, token + "\n", 0600).withContext("write admin token"));
  store::TokenRecord rec;
  rec.name = "admin";
  rec.role = "admin";
  rec.created_ms = clock.nowMillis();
  rec.created_by = "nubo serve";
  RETURN_IF_ERROR(auth.registerToken(token, rec));
  spdlog::info("created the admin token: {} (mode 0600)", path);
  return Status::Ok();
}

// The key secrets are sealed with. A rotation writes the next key beside
// it, re-seals every secret in one transaction, then renames the next key
// over the old: a crash at any point leaves every secret readable (a box
// opens values under either key while both are there), and the next start
// finishes the rotation.
Result<SecretBox> openSecrets(const std::string& key_path, bool rotate, store::MetadataStore& store) {
  std::string next_path = key_path + ".next";
  struct stat st {};
  bool unfinished = ::stat(next_path.c_str(), &st) == 0;
  if (rotate && !unfinished) RETURN_IF_ERROR(SecretBox::createKeyFile(next_path));
  ASSIGN_OR_RETURN(SecretBox box, SecretBox::open(key_path, next_path));
  if (!box.rotating()) return box;
  ASSIGN_OR_RETURN(size_t resealed,
                   store.resealSecrets([&box](std::string_view app, std::string_view name,
                                              std::string_view sealed) -> Result<std::string> {
                     if (box.sealedWithNewest(sealed)) return std::string(sealed);
                     ASSIGN_OR_RETURN(std::string plain, box.unseal(sealed, app, name));
                     return box.seal(plain, app, name);
                   }));
  if (::rename(next_path.c_str(), key_path.c_str()) != 0) {
    return Internal("rotating the secret key: rename " + next_path + ": " + std::strerror(errno));
  }
  RETURN_IF_ERROR(syncDir(std::filesystem::path(key_path).parent_path().string()));
  spdlog::info("secrets: re-encrypted {} values under a new key ({})", resealed, key_path);
  return SecretBox::open(key_path, "");
}

int portOf(const std::string& host_port) { return std::stoi(host_port.substr(host_port.rfind(':') + 1)); }

// The egress network builds and networked functions get: a veth pair per
// sandbox behind this server's nftables table (as root), slirp4netns (as
// another user), or the host's namespace when neither can be had (said
// here; refused under --sandbox=strict).
Result<runtime::EgressOptions> chooseEgress(const ServerOptions& opts, const std::string& scope) {
  runtime::EgressOptions e;
  e.tag = scope.substr(0, 5);
  e.subnet = opts.sandbox_subnet;
  e.dns = opts.sandbox_dns;
  e.deny = opts.sandbox_deny;
  e.max_connections = opts.sandbox_max_connections;
  RETURN_IF_ERROR(runtime::validateEgress(e));
  std::string want = opts.sandbox_network;
  if (opts.sandbox == "off") want = "host";
  if (want == "auto") want = ::geteuid() == 0 ? "veth" : ::access(e.slirp4netns.c_str(), X_OK) == 0 ? "slirp" : "host";
  if (want == "veth") {
    e.mode = runtime::EgressOptions::Mode::kVeth;
    if (Status s = runtime::checkHostRules(e); !s.ok()) {
      if (opts.sandbox_network == "veth") return s.withContext("--sandbox-network=veth");
      spdlog::warn("sandbox: no egress network for builds and networked functions: {}", s.message());
      e.mode = runtime::EgressOptions::Mode::kHost;
    }
  } else if (want == "slirp") {
    e.mode = runtime::EgressOptions::Mode::kSlirp;
    if (!e.deny.empty()) {
      return FailedPrecondition("--sandbox-deny: slirp4netns (the network of a server not running as root) cannot "
                                "keep sandboxes from a network; run as root for veth networks, or drop the flag");
    }
    if (::access(e.slirp4netns.c_str(), X_OK) != 0) {
      return FailedPrecondition("--sandbox-network=slirp: " + e.slirp4netns +
                                " is not installed (apt-get install slirp4netns)");
    }
  }
  return e;
}

// Says once what builds and networked functions can reach.
void logEgress(const ServerOptions& opts, const runtime::EgressOptions& e) {
  using Mode = runtime::EgressOptions::Mode;
  if (e.mode == Mode::kVeth) {
    spdlog::info("sandbox: builds and networked functions get egress-only networks (veth pairs, addresses from {}, "
                 "at most {} connections each, nftables table nubo_{}_{})", e.subnet, e.max_connections, e.tag, ::getpid());
    return;
  }
  std::string what = e.mode == Mode::kSlirp
                         ? "builds and networked functions reach out through slirp4netns: not the host's loopback, "
                           "but the node's other addresses are reachable"
                         : "builds and permissions.network functions share the host's network namespace (they can "
                           "reach its loopback services and bind its ports)";
  if (opts.sandbox == "strict") spdlog::info("sandbox: strict: {}, so they are refused", what);
  else spdlog::warn("sandbox: {}; --sandbox=strict refuses them", what);
}

// The gauges other components keep, for GET /metrics.
void addCollectors(metrics::Metrics& m, runtime::Functions& functions, gateway::FileCache& cache,
                   blob::BlobStore& blobs, logs::LogStore& logstore) {
  m.addCollector([&functions](metrics::Exposition& out) {
    runtime::PoolLoad l = functions.load();
    out.family("nubo_instances", "gauge",
               "Function instances by state (busy: serving requests; stem: pre-started, not yet any deployment's).");
    for (auto [state, n] : {std::pair<std::string_view, int>{"starting", l.starting}, {"idle", l.idle},
                            {"busy", l.busy}, {"stopping", l.stopping}, {"stem", l.stems}}) {
      out.sample("nubo_instances", {{"state", state}}, n);
    }
    out.family("nubo_inflight_requests", "gauge", "Requests instances are serving.");
    out.sample("nubo_inflight_requests", {}, l.inflight);
    out.family("nubo_queued_requests", "gauge", "Requests waiting for a free instance slot.");
    out.sample("nubo_queued_requests", {}, l.queued);
  });
  m.addCollector([&cache](metrics::Exposition& out) {
    auto u = cache.usage();
    out.family("nubo_file_cache_bytes", "gauge", "Static file bytes held in memory.");
    out.sample("nubo_file_cache_bytes", {}, static_cast<double>(u.bytes));
    out.family("nubo_file_cache_capacity_bytes", "gauge", "The most static file bytes held in memory (--cache-mb).");
    out.sample("nubo_file_cache_capacity_bytes", {}, static_cast<double>(u.capacity));
    out.family("nubo_file_cache_entries", "gauge", "Static files held in memory.");
    out.sample("nubo_file_cache_entries", {}, static_cast<double>(u.entries));
  });
  // The blob store is walked at most once a minute (a scrape every few
  // seconds must not list a large store each time).
  struct BlobUsage {
    std::mutex mu;
    std::chrono::steady_clock::time_point at{};
    uint64_t blobs = 0, bytes = 0;
  };
  auto usage = std::make_shared<BlobUsage>();
  m.addCollector([&blobs, usage](metrics::Exposition& out) {
    std::lock_guard lock(usage->mu);
    if (usage->at == std::chrono::steady_clock::time_point{} || std::chrono::steady_clock::now() - usage->at > std::chrono::minutes(1)) {
      uint64_t n = 0, b = 0;
      Status s = blobs.list([&](const blob::BlobStore::Listed& l) {
        ++n, b += l.size;
        return true;
      });
      if (s.ok()) usage->blobs = n, usage->bytes = b;
      usage->at = std::chrono::steady_clock::now();
    }
    out.family("nubo_blob_store_bytes", "gauge", "Bytes in the blob store (counted at most once a minute).");
    out.sample("nubo_blob_store_bytes", {}, static_cast<double>(usage->bytes));
    out.family("nubo_blob_store_blobs", "gauge", "Blobs in the blob store (counted at most once a minute).");
    out.sample("nubo_blob_store_blobs", {}, static_cast<double>(usage->blobs));
  });
  m.addCollector([&logstore](metrics::Exposition& out) {
    out.family("nubo_log_lines_dropped_total", "counter",
               "Function log lines dropped because the log writer was behind.");
    out.sample("nubo_log_lines_dropped_total", {}, static_cast<double>(logstore.dropped()));
  });
  m.addCollector([](metrics::Exposition& out) {
    out.family("nubo_build_info", "gauge", "The server's version (always 1).");
    out.sample("nubo_build_info", {{"version", NUBO_VERSION}}, 1);
    metrics::collectProcess(out);
  });
}

asio::awaitable<Status> bringHere(blob::BlobStore& blobs, gateway::SiteFetch what) {
  co_return what.trees ? blob::bringTrees(blobs, what.hash) : blobs.localPath(what.hash).status();
}

// What a static site needs, brought here on `pool`, awaited from the data
// plane. (Plain coroutine functions: GCC 12 destroys a coroutine lambda's
// captured strings twice.)
asio::awaitable<Status> fetchOn(asio::thread_pool& pool, blob::BlobStore& blobs, gateway::SiteFetch what) {
  co_return co_await asio::co_spawn(pool, bringHere(blobs, std::move(what)), asio::use_awaitable);
}

void runThreads(asio::io_context& ioc, int n, std::vector<std::thread>& threads) {
  for (int i = 0; i < n; ++i) threads.emplace_back([&ioc] { ioc.run(); });
}

}  // namespace

Status runServer(const ServerOptions& opts) {
  ::signal(SIGPIPE, SIG_IGN);
  std::string data_dir = opts.data_dir.empty() ? defaultDataDir() : opts.data_dir;
  RETURN_IF_ERROR(makeDirs(data_dir, 0700).withContext("data dir"));
  ASSIGN_OR_RETURN(DataDirLock lock, DataDirLock::acquire(data_dir));

  SystemClock clock;
  if (opts.fleet.enabled() && opts.rotate_secret_key) {
    return InvalidArgument("--rotate-secret-key re-seals a single node's secrets; rotating the key a fleet's nodes "
                           "share is not supported yet (docs/fleet.md): start without it");
  }
  ASSIGN_OR_RETURN(Stores stores, openStores(opts, data_dir, clock));
  std::string node_id;  // a fleet's name for this node
  if (stores.etcd) {
    ASSIGN_OR_RETURN(node_id, nodeId(opts.fleet, data_dir));
  }
  auto& store = stores.meta;
  auto& blobs = stores.blobs;
  api::Authenticator auth(*store, clock);
  RETURN_IF_ERROR(ensureAdminToken(data_dir, *store, auth, clock));
  const std::string secret_key_path = opts.secret_key_file.empty() ? data_dir + "/secret.key" : opts.secret_key_file;
  ASSIGN_OR_RETURN(SecretBox secrets, openSecrets(secret_key_path, opts.rotate_secret_key, *store));
  if (opts.fleet.enabled()) RETURN_IF_ERROR(checkSharedSecretKey(*store, secrets, secret_key_path));

  ASSIGN_OR_RETURN(auto code, runtime::CodeStore::create(data_dir + "/instances", data_dir + "/app-files", *blobs));

  // Isolation: every layer this kernel allows (said once, here), all of them
  // in strict mode, or none when switched off.
  std::string runtime_dir = data_dir + "/runtimes/node";
  char real[PATH_MAX];
  std::string scope = sha256Hex(::realpath(data_dir.c_str(), real) ? real : data_dir).substr(0, 12);
  runtime::Cgroups cgroups = opts.sandbox == "off" ? runtime::Cgroups() : runtime::Cgroups::detect(scope);
  cgroups.sweep();
  runtime::PlainLauncher plain_launcher;
  ASSIGN_OR_RETURN(runtime::EgressOptions egress, chooseEgress(opts, scope));
  if (opts.fleet.enabled()) {
    // Tenants' code must not reach the fleet's etcd or object store.
    std::vector<std::string> shared = fleetAddresses(opts.fleet);
    if (egress.mode == runtime::EgressOptions::Mode::kVeth) {
      egress.deny.insert(egress.deny.end(), shared.begin(), shared.end());
    } else {
      std::string list;
      for (const auto& a : shared) list += (list.empty() ? "" : ", ") + a;
      spdlog::warn("fleet: builds and networked functions may reach etcd and the object store ({}): run nodes as "
                   "root (veth sandboxes keep them out) or require etcd auth (--etcd-user) and keep the S3 "
                   "credentials secret", list);
    }
  }
  struct RulesGuard {
    const runtime::EgressOptions& e;
    ~RulesGuard() { runtime::removeHostRules(e); }
  } rules_guard{egress};
  std::string resolv_conf;
  if (egress.mode != runtime::EgressOptions::Mode::kHost) {
    auto resolv = runtime::sandboxResolvConf(egress);
    if (resolv.ok()) resolv_conf = *resolv;
    else spdlog::warn("sandbox: networked sandboxes have no DNS: {}", resolv.status().message());
  }
  runtime::SandboxLauncher sandbox_launcher(data_dir + "/sandbox/root", runtime_dir, cgroups, egress, resolv_conf);
  runtime::Launcher* launcher = &plain_launcher;
  if (opts.sandbox == "off") {
    spdlog::warn("sandbox: off (--sandbox=off): function instances run without isolation");
  } else {
    runtime::SandboxProbe probe = sandbox_launcher.probe();
    // Without an egress network the server still starts; strict mode then
    // refuses what would need one.
    if (opts.sandbox == "strict" && !probe.missing.empty() &&
        (probe.missing.size() > 1 || !probe.missing.count("egress-network"))) {
      return FailedPrecondition("--sandbox=strict: this machine cannot provide every isolation layer; missing: " +
                                probe.summary());
    }
    if (!probe.usable) {
      spdlog::warn("sandbox: unavailable, function instances run without isolation (missing: {}); "
                   "--sandbox=strict refuses to start instead", probe.summary());
    } else {
      launcher = &sandbox_launcher;
      if (probe.missing.empty()) {
        spdlog::info("sandbox: every isolation layer is active (cgroup {})", cgroups.kind());
      } else {
        spdlog::warn("sandbox: running without: {}; --sandbox=strict refuses to start instead", probe.summary());
      }
    }
  }

  bool host_isolated = launcher == &sandbox_launcher && sandbox_launcher.egress().isolatesHost();
  logEgress(opts, launcher == &sandbox_launcher ? sandbox_launcher.egress() : runtime::EgressOptions{});

  // The data plane: one io_context ("shard") per thread, with no strands.
  // Connections are dealt to the shards in turn, instances are spread over
  // them, and a request goes to an instance on its own shard when it can
  // (runtime/pool.h), so that it is served without a hand-off between
  // threads.
  int data_threads = opts.threads > 0 ? opts.threads
                                      : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  asio::io_context data_ioc(1);
  std::vector<std::unique_ptr<asio::io_context>> more_shards;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> shard_work;
  for (int i = 1; i < data_threads; ++i) {
    more_shards.push_back(std::make_unique<asio::io_context>(1));
    shard_work.push_back(asio::make_work_guard(*more_shards.back()));  // idle until work comes
  }
  std::vector<asio::io_context*> shards = {&data_ioc};
  for (auto& sh : more_shards) shards.push_back(sh.get());
  asio::io_context control_ioc;

  // What /_nubo/readyz waits for, on both planes.
  Readiness readiness;
  if (stores.etcd_meta) {
    // Routes come from etcd's watch: not ready until it follows etcd.
    readiness.check("store", [meta = stores.etcd_meta]() -> std::string {
      return meta->synced() ? "" : "the etcd watch has not synced yet";
    });
  } else {
    readiness.require("store");
    readiness.set("store", true);  // (opened above)
  }
  readiness.require("routes");
  metrics::Metrics metrics(opts.metrics_max_apps);
  metrics::History history(metrics);
  gateway::Router router(*store, opts.base_domain, &secrets, &metrics);
  RETURN_IF_ERROR(router.start());
  readiness.set("routes", true);
  gateway::FileCache cache(*blobs, opts.cache_mb << 20, std::min<uint64_t>(opts.cache_mb << 20, 1 << 20));
  gateway::StaticSite site(*blobs, cache, 256);
  logs::LogStore logstore(data_dir + "/logs");
  runtime::FunctionsOptions fopts;
  fopts.runtime_dir = runtime_dir;
  fopts.stems = opts.stems;
  fopts.max_stems = opts.max_stems >= 0 ? opts.max_stems : runtime::stemsForMemory(availableMemory(), opts.stems);
  fopts.wait_until = opts.wait_until;
  fopts.threads = 1;
  fopts.shards = shards;
  fopts.metrics = &metrics;
  runtime::Cgroups* instance_cgroups = launcher == &sandbox_launcher ? &cgroups : nullptr;
  ASSIGN_OR_RETURN(auto functions,
                   runtime::Functions::create(data_ioc, *launcher, *code, instance_cgroups, logstore, fopts,
                                              [&router](const std::string& app, const std::string& id) {
                                                return router.isAliased(app, id);
                                              }));
  gateway::WebSocketLimits ws_limits;
  ws_limits.max_message_bytes = opts.max_ws_message_mb << 20;
  ws_limits.idle_timeout = opts.ws_idle_timeout;
  // What the server's own cron requests carry, so that only they reach a
  // function with X-Nubo-Cron.
  std::string cron_key = sha256Hex(randomBytes(32));
  gateway::GatewayOptions gateway_opts{opts.trust_proxy, ws_limits, cron_key, &metrics, &readiness, &logstore, nullptr};
  // A fleet's blobs: what a static site needs that this node lacks (its
  // trees, then each file asked for) is fetched here, off the data plane.
  asio::thread_pool fetch_pool(4);
  if (stores.s3_blobs) {
    gateway_opts.fetch = [&fetch_pool, &blobs](const gateway::SiteFetch& what) {
      return fetchOn(fetch_pool, *blobs, what);
    };
  }
  gateway::Gateway gw(router, site, functions.get(), gateway_opts);
  readiness.check("stems", [&functions, want = static_cast<size_t>(std::max(0, opts.stems))]() -> std::string {
    size_t ready = functions->stemCount();
    if (ready >= want) return "";
    return std::to_string(ready) + " of " + std::to_string(want) + " stems started";
  });
  addCollectors(metrics, *functions, cache, *blobs, logstore);
  // Builds: the built-in builders (and any an operator adds) in DATA/builders.
  std::string builders_dir = data_dir + "/builders";
  RETURN_IF_ERROR(build::installBuiltinBuilders(builders_dir));
  RETURN_IF_ERROR(build::installSdk(data_dir + "/sdk"));
  logs::LogStore build_logs(data_dir + "/build-logs", 4u << 20);
  build::BuildOptions bopts;
  bopts.builders_dir = builders_dir;
  bopts.work_dir = data_dir + "/builds";
  bopts.cache_dir = data_dir + "/build-cache";
  bopts.sdk_dir = data_dir + "/sdk";
  bopts.timeout = opts.build_timeout;
  bopts.max_output_files = opts.build_max_output_files;
  bopts.max_output_bytes = opts.build_max_output_mb << 20;
  bopts.max_disk_bytes = opts.build_max_disk_mb << 20;
  build::BuildRunner build_runner(*launcher, *blobs, *code, instance_cgroups, bopts);
  // Code goes live once it has started: probed on the data plane's shards.
  runtime::StartCheck starts(*store, build_logs, shards,
                             [&functions, &secrets](store::Deployment d) -> asio::awaitable<Result<std::string>> {
                               auto spec = gateway::deploymentSpec(d, &secrets);
                               if (!spec.ok()) co_return spec.status();
                               co_return co_await functions->probe(std::move(*spec));
                             });
  auto start_check = [&starts](const store::Deployment& d) { return starts.submit(d); };
  build::DependencyReuse reuse(*store, *blobs);
  std::unique_ptr<build::BuildQueue> builds;
  api::Deployer deployer(
      *store, *blobs, clock, [&builds](const store::Deployment& d) { return builds->submit(d); },
      [&builders_dir] { return !build::operatorBuilders(builders_dir).empty(); },
      api::DeployLimits{opts.max_deployment_files, opts.max_deployment_mb << 20,
                        opts.sandbox == "strict" && !host_isolated, opts.max_app_cpu},
      start_check, &metrics);
  builds = std::make_unique<build::BuildQueue>(
      *store, build_runner, build_logs,
      [&deployer](const store::Deployment& d, const std::string& tree) { return deployer.checkRunnable(d, tree); },
      build::QueueOptions{opts.build_concurrency, 64, 3, &metrics, node_id,
                          std::chrono::seconds(opts.fleet.build_claim_s),
                          std::chrono::seconds(std::max(1, opts.fleet.build_claim_s / 3))},
      start_check, &reuse);

  http::ServerLimits data_limits;
  data_limits.body_bytes = opts.max_body_mb << 20;
  data_limits.stream_bodies = true;  // uploads to functions flow through, never whole in memory
  data_limits.header_timeout = opts.header_timeout;
  data_limits.max_connections = opts.max_connections;
  data_limits.max_connections_per_client = opts.max_connections_per_client;
  http::HttpServer data_server(data_ioc, "gateway", data_limits, gw, 1);
  if (shards.size() > 1) data_server.spreadConnections(shards);
  ASSIGN_OR_RETURN(std::string data_addr, data_server.listen(opts.listen));

  // Cron: requests to the data plane itself, over loopback when it listens
  // on every address.
  std::string data_host = data_addr.substr(0, data_addr.rfind(':'));
  if (data_host == "0.0.0.0" || data_host == "[::]" || data_host == "::") data_host = "127.0.0.1";
  cron::CronScheduler cron(*store, logstore, clock,
                           cron::loopbackFire("http://" + data_host + ":" + std::to_string(portOf(data_addr)),
                                              cron_key, 900));

  // A fleet's nodes (registered once the planes listen).
  std::unique_ptr<fleet::NodeRegistry> registry;
  std::function<Result<Json>()> list_nodes;
  if (stores.etcd) {
    list_nodes = [&registry]() -> Result<Json> {
      if (!registry) return Unavailable("this node has not joined the fleet yet");
      ASSIGN_OR_RETURN(auto nodes, registry->list());
      Json out = Json::array();
      for (const auto& n : nodes) out.push_back(fleet::nodeJson(n));
      return out;
    };
  }
  api::PublicUrls urls;
  urls.base_domain = opts.base_domain;
  urls.port = portOf(data_addr);
  api::ControlApi control_api(*store, deployer, auth, clock, secrets, urls, functions.get(), &cron, logstore,
                              build_logs,
                              [&builds, &code, &functions](const std::string& app) {
                                builds->removeApp(app);
                                functions->removeApp(app);
                                code->removeApp(app);
                              },
                              [&router](const std::string& deployment) { return router.has(deployment); },
                              api::Observability{&metrics, opts.metrics_token, &readiness, &history, list_nodes});
  http::ServerLimits control_limits;
  control_limits.body_bytes = opts.max_upload_mb << 20;
  control_limits.body_limit_hint = "the largest file a deploy may upload; a server operator can raise it with --max-upload-mb";
  control_limits.header_timeout = opts.header_timeout;
  control_limits.max_connections = opts.max_connections;
  control_limits.max_connections_per_client = opts.max_connections_per_client;
  http::HttpServer control_server(control_ioc, "control", control_limits, control_api);
  ASSIGN_OR_RETURN(std::string control_addr, control_server.listen(opts.control));
  // The egress rules know the planes' ports now; no sandbox runs yet.
  if (launcher == &sandbox_launcher && sandbox_launcher.egress().mode == runtime::EgressOptions::Mode::kVeth) {
    RETURN_IF_ERROR(runtime::installHostRules(egress, {portOf(data_addr), portOf(control_addr)}));
  }

  std::string data_url = "http://" + data_addr;
  std::string control_url = "http://" + control_addr;
  if (stores.etcd) {
    auto advertised = [&opts](const std::string& addr) {
      std::string host = opts.fleet.advertise_host.empty() ? addr.substr(0, addr.rfind(':')) : opts.fleet.advertise_host;
      return "http://" + host + ":" + std::to_string(portOf(addr));
    };
    fleet::NodeInfo self;
    self.id = node_id;
    self.data_url = advertised(data_addr);
    self.control_url = advertised(control_addr);
    self.version = NUBO_VERSION;
    ASSIGN_OR_RETURN(registry, fleet::NodeRegistry::start(
                                   stores.etcd, stores.etcd_meta->prefix(), self,
                                   [&functions, &readiness](fleet::NodeInfo& n) {
                                     auto instances = functions->describe();
                                     n.instances = instances.size();
                                     n.in_flight = 0;
                                     for (const auto& i : instances) n.in_flight += i.inflight;
                                     double load[1] = {0};
                                     if (::getloadavg(load, 1) == 1) n.load = load[0];
                                     n.ready = readiness.report().ready;
                                   },
                                   fleet::NodeRegistry::Options{}));
    spdlog::info("fleet: joined as node {} (data {}, control {})", self.id, self.data_url, self.control_url);
  }
  if (opts.write_client_config) {
    std::string cfg = clientConfigPath();
    if (::access(cfg.c_str(), F_OK) != 0) {
      auto token = readFile(data_dir + "/admin.token", 4096);
      if (token.ok()) {
        std::string t = *token;
        while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
        if (Status s = saveClientConfig(cfg, {control_url, t}); s.ok()) {
          spdlog::info("wrote the CLI config {} (server {}, admin token)", cfg, control_url);
        } else {
          spdlog::warn("could not write the CLI config {}: {}", cfg, s.message());
        }
      }
    }
  }
  Json info = {{"pid", ::getpid()}, {"data_url", data_url}, {"control_url", control_url}};
  RETURN_IF_ERROR(writeFileAtomic(data_dir + "/serve.json", dumpJson(info) + "\n", 0600));

  spdlog::info("nubo serving apps on {} (http://<app>.{}:{}/) and the control API on {}; data in {}", data_url,
               opts.base_domain, urls.port, control_url, data_dir);

  // Blobs no deployment needs go now and then (an hour's grace for deploys
  // in progress), on a control-plane thread.
  asio::steady_timer gc_timer(control_ioc);
  std::function<void()> schedule_gc = [&] {
    if (opts.gc_interval_h <= 0) return;
    gc_timer.expires_after(std::chrono::hours(opts.gc_interval_h));
    gc_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      // A fleet collects on one node per round (the lease outlives the
      // round, so the others skip it).
      if (!node_id.empty() &&
          !store->acquireLease("gc", node_id, std::chrono::hours(std::max(1, opts.gc_interval_h)) / 2).ok()) {
        schedule_gc();
        return;
      }
      auto g = deployer.collectGarbage(3600 * 1000);
      if (g.ok()) {
        spdlog::info("gc: removed {} of {} blobs ({} of {} bytes)", g->removed, g->blobs, g->removed_bytes, g->bytes);
      } else {
        spdlog::warn("gc: {}", g.status().message());
      }
      schedule_gc();
    });
  };
  schedule_gc();

  // The console's charts: what the counters did, minute by minute.
  asio::steady_timer history_timer(control_ioc);
  std::function<void()> schedule_history = [&] {
    history_timer.expires_after(std::chrono::seconds(5));
    history_timer.async_wait([&](const boost::system::error_code& ec) {
      if (ec) return;
      history.sample(clock.nowMillis());
      schedule_history();
    });
  };
  schedule_history();

  // Shutdown: on the first signal drain both servers; when both are idle, or
  // the grace period ends, stop. A second signal stops at once.
  asio::signal_set signals(control_ioc, SIGINT, SIGTERM);
  asio::steady_timer grace(control_ioc);
  int pending = 2;
  bool stopping = false;
  auto finish = [&] {
    cron.stop();
    builds->shutdown();
    starts.shutdown();
    functions->shutdown();
    data_server.closeAll();
    control_server.closeAll();
    gc_timer.cancel();
    history_timer.cancel();
    data_ioc.stop();
    for (auto& sh : more_shards) sh->stop();
    control_ioc.stop();
  };
  auto one_idle = [&] {
    asio::post(control_ioc, [&] {
      if (--pending == 0) {
        grace.cancel();
        finish();
      }
    });
  };
  std::function<void(const boost::system::error_code&, int)> on_signal =
      [&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        if (stopping) {
          spdlog::warn("second signal: stopping now");
          finish();
          return;
        }
        stopping = true;
        spdlog::info("signal {}: finishing in-flight requests (up to {} ms), then exiting", signo, opts.grace.count());
        data_server.drain(one_idle);
        control_server.drain(one_idle);
        grace.expires_after(opts.grace);
        grace.async_wait([&](const boost::system::error_code& e) {
          if (e) return;
          spdlog::warn("grace period over: closing {} connection(s)",
                       data_server.connectionCount() + control_server.connectionCount());
          finish();
        });
        signals.async_wait(on_signal);
      };
  signals.async_wait(on_signal);

  functions->start();
  starts.start();
  builds->start();
  cron.start();
  std::vector<std::thread> threads;
  for (auto* sh : shards) runThreads(*sh, 1, threads);
  runThreads(control_ioc, 3, threads);
  for (auto& t : threads) t.join();
  // A fleet: this node leaves the list now, and other nodes' changes stop
  // coming before the components they go to are taken down.
  registry.reset();
  if (stores.etcd_meta) stores.etcd_meta->stopFollowing();
  cgroups.removeAll();  // instances whose exit was not seen before the loops stopped
  ::unlink((data_dir + "/serve.json").c_str());
  spdlog::info("nubo stopped");
  return Status::Ok();
}

}  // namespace nubo::server
