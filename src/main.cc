// nubo: one binary for the server (`nubo serve`) and the client commands.
// Parses flags and hands over; the server is wired in src/server, the
// client commands live in src/cli.
#include <arpa/inet.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>

#include "cli/commands.h"
#include "execproxy/exec_proxy.h"
#include "runtime/sandbox.h"
#include "server/data_dir.h"
#include "server/migrate.h"
#include "server/server.h"

int main(int argc, char** argv) {
  // The sandbox helper: a fresh process that isolates one function instance.
  if (argc >= 2 && std::strcmp(argv[1], "__sandbox") == 0) return nubo::runtime::sandboxMain(argc, argv);
  if (argc >= 2 && std::strcmp(argv[1], "__exec-proxy") == 0) return nubo::execproxy::execProxyMain(argc, argv);

  CLI::App app{"nubo: deploy a folder, get an immutable URL.\n"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "nubo " NUBO_VERSION);
  int exit_code = 0;

  nubo::server::ServerOptions serve_opts;
  auto* serve = app.add_subcommand("serve", "Run the platform: data plane and control plane in one process");
  serve->add_option("--data", serve_opts.data_dir, "Data directory (default: $NUBO_DATA, else ~/.local/share/nubo)");
  serve->add_option("--listen", serve_opts.listen, "Data-plane address (default 127.0.0.1:8080)");
  serve->add_option("--control", serve_opts.control, "Control-plane address (default 127.0.0.1:7070)");
  serve->add_option("--base-domain", serve_opts.base_domain, "Apps answer at <app>.<base-domain> (default localhost)");
  serve->add_option("--threads", serve_opts.threads, "Data-plane shards, one thread each (default: one per core)")
      ->check(CLI::Range(0, 256));
  int64_t grace_ms = serve_opts.grace.count();
  serve->add_option("--grace-ms", grace_ms, "How long in-flight requests may finish at shutdown (default 10000)")
      ->check(CLI::Range(0, 600000));
  int64_t header_timeout_ms = serve_opts.header_timeout.count();
  serve->add_option("--header-timeout-ms", header_timeout_ms,
                    "Clients must send a request's headers within this time, else 408 (default 10000)")
      ->check(CLI::Range(10, 600000));
  serve->add_option("--cache-mb", serve_opts.cache_mb, "Memory for hot static files (default 256)")
      ->check(CLI::Range(0, 65536));
  serve->add_option("--max-upload-mb", serve_opts.max_upload_mb, "Largest file a deploy may upload (default 512)")
      ->check(CLI::Range(1, 65536));
  serve->add_option("--max-body-mb", serve_opts.max_body_mb, "Largest request body for a function, streamed to it (default 1024)")
      ->check(CLI::Range(1, 4096));
  serve->add_option("--max-ws-message-mb", serve_opts.max_ws_message_mb,
                    "Largest WebSocket message a client may send a function; a larger one closes the socket with "
                    "1009 (default 16)")
      ->check(CLI::Range(1, 1024));
  int64_t ws_idle_s = serve_opts.ws_idle_timeout.count() / 1000;
  serve->add_option("--ws-idle-timeout-s", ws_idle_s,
                    "A WebSocket with no frame either way for this long is closed with 1001 (default 300)")
      ->check(CLI::Range(1, 86400));
  serve->add_option("--max-deployment-files", serve_opts.max_deployment_files,
                    "Most files one deployment may hold, counting repeated folders each time (default 100000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
  serve->add_option("--max-deployment-mb", serve_opts.max_deployment_mb,
                    "Most bytes one deployment may hold, counting repeated folders each time (default 2048)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'048'576}));
  serve->add_option("--max-connections", serve_opts.max_connections,
                    "Open client connections on each plane; when full the longest-idle close (default 10000)")
      ->check(CLI::Range(size_t{16}, size_t{1'000'000}));
  serve->add_option("--max-connections-per-client", serve_opts.max_connections_per_client,
                    "Connections one client address may hold, 0 for no limit (default 256; raise it behind a proxy)")
      ->check(CLI::Range(size_t{0}, size_t{1'000'000}));
  serve->add_option("--gc-interval-h", serve_opts.gc_interval_h,
                    "Remove blobs no deployment needs every N hours, 0 for only `nubo gc` (default 24)")
      ->check(CLI::Range(0, 24 * 365));
  serve->add_option("--stems", serve_opts.stems, "Pre-started node instances for fast cold starts (default 2)")
      ->check(CLI::Range(0, 64));
  serve->add_option("--max-stems", serve_opts.max_stems,
                    "Stems in all while bursts of cold starts last (default: sized from memory; at most --stems: no bursts)")
      ->check(CLI::Range(0, 64));
  serve->add_option("--build-concurrency", serve_opts.build_concurrency, "Builds that run at once (default 2)")
      ->check(CLI::Range(1, 64));
  int wait_until_s = 30;
  serve->add_option("--wait-until-s", wait_until_s,
                    "How long ctx.waitUntil() work may run after a function's last response (default 30)")
      ->check(CLI::Range(1, 3600));
  int build_timeout_s = 600;
  serve->add_option("--build-timeout-s", build_timeout_s, "A build running longer is stopped and fails (default 600)")
      ->check(CLI::Range(1, 86400));
  serve->add_option("--build-max-output-files", serve_opts.build_max_output_files,
                    "A build whose output has more files fails (default 100000)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{100'000'000}));
  serve->add_option("--build-max-output-mb", serve_opts.build_max_output_mb,
                    "A build whose output has more bytes fails (default 1024)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'048'576}));
  serve->add_option("--build-max-disk-mb", serve_opts.build_max_disk_mb,
                    "Disk a build may fill in its output, scratch and cache folders; over it the build stops "
                    "(default 4096)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'048'576}));
  serve->add_option("--sandbox", serve_opts.sandbox,
                    "Instance isolation: auto (every layer the kernel allows, default), strict (all or refuse), off")
      ->check(CLI::IsMember({"auto", "strict", "off"}));
  serve->add_option("--secret-key-file", serve_opts.secret_key_file,
                    "The key secrets are encrypted with (default DATA/secret.key, made on first start, mode 0600); "
                    "keep it outside the data dir so backups need not carry it");
  serve->add_flag("--rotate-secret-key", serve_opts.rotate_secret_key,
                  "Before serving, re-encrypt every secret under a new key, which replaces the key file");
  serve->add_option("--trust-proxy", serve_opts.trust_proxy,
                    "Addresses of front proxies whose X-Forwarded-For/-Proto/-Host/-Prefix functions may believe "
                    "(others' are replaced)")
      ->delimiter(',')
      ->check(CLI::Validator(
          [](std::string& s) {
            unsigned char buf[16];
            bool ip = ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
            return ip ? std::string() : "\"" + s + "\" is not an IP address (name each proxy's address)";
          },
          "IP"));
  serve->add_option("--metrics-token", serve_opts.metrics_token,
                    "A token GET /metrics then needs (Authorization: Bearer); without one /metrics is open. "
                    "Also read from $NUBO_METRICS_TOKEN (not seen in the process list)")
      ->envname("NUBO_METRICS_TOKEN")
      ->check(CLI::Validator(
          [](std::string& s) {
            if (s.size() < 16) return std::string("a metrics token needs at least 16 characters");
            for (char c : s) {
              if (c <= ' ' || c > '~') return std::string("a metrics token is printable ASCII without spaces");
            }
            return std::string();
          },
          "TOKEN"));
  serve->add_option("--metrics-max-apps", serve_opts.metrics_max_apps,
                    "Apps named in metrics labels; requests to any further app count as app=\"(other)\" (default 1000)")
      ->check(CLI::Range(size_t{1}, size_t{100'000}));
  serve->add_option("--max-app-cpu", serve_opts.max_app_cpu,
                    "The largest limits.cpu (an app's CPU weight, in CPUs) a deployment may ask for (default 4)")
      ->check(CLI::Range(0.1, 16.0));
  serve->add_option("--sandbox-network", serve_opts.sandbox_network,
                    "Network of builds and permissions.network functions: auto (veth as root, else slirp), veth "
                    "(a veth pair and nftables rules per sandbox), slirp (slirp4netns), host (the host's, unisolated)")
      ->check(CLI::IsMember({"auto", "veth", "slirp", "host"}));
  serve->add_option("--sandbox-subnet", serve_opts.sandbox_subnet,
                    "IPv4 network the veth sandboxes take addresses from (default 10.213.0.0/16)");
  serve->add_option("--sandbox-dns", serve_opts.sandbox_dns,
                    "Resolvers named in networked sandboxes' /etc/resolv.conf (default: the host's)")
      ->delimiter(',');
  serve->add_option("--sandbox-deny", serve_opts.sandbox_deny,
                    "IPv4 networks (CIDR) builds and networked functions may not reach, e.g. where etcd runs (veth)")
      ->delimiter(',');
  serve->add_option("--sandbox-max-connections", serve_opts.sandbox_max_connections,
                    "Connections one build or networked instance may hold open at a time (default 256)")
      ->check(CLI::Range(1, 65536));
  // A fleet: nodes sharing etcd and an S3-compatible store (docs/fleet.md).
  auto& fleet = serve_opts.fleet;
  serve->add_option("--etcd", fleet.etcd,
                    "A fleet's etcd endpoints, comma-separated (http://h1:2379,...); with --s3, this node joins the "
                    "fleet instead of keeping SQLite and local blobs")
      ->delimiter(',');
  serve->add_option("--etcd-prefix", fleet.etcd_prefix, "Where the fleet's keys live in etcd (default /nubo/)");
  serve->add_option("--etcd-user", fleet.etcd_user, "etcd user (authentication on)");
  serve->add_option("--etcd-password", fleet.etcd_password, "etcd password (also $NUBO_ETCD_PASSWORD)")
      ->envname("NUBO_ETCD_PASSWORD");
  serve->add_option("--etcd-ca", fleet.etcd_ca, "CA certificate for https etcd endpoints")->check(CLI::ExistingFile);
  serve->add_option("--etcd-cert", fleet.etcd_cert, "Client certificate for etcd")->check(CLI::ExistingFile);
  serve->add_option("--etcd-key", fleet.etcd_key, "Client certificate key for etcd")->check(CLI::ExistingFile);
  serve->add_option("--s3", fleet.s3_endpoint, "The fleet's S3-compatible object store (http://host:port, path-style)");
  serve->add_option("--s3-bucket", fleet.s3_bucket, "Bucket for the fleet's blobs");
  serve->add_option("--s3-region", fleet.s3_region, "Region the requests are signed for (default us-east-1)");
  serve->add_option("--s3-access-key", fleet.s3_access_key, "S3 access key (read from $AWS_ACCESS_KEY_ID)")
      ->envname("AWS_ACCESS_KEY_ID");
  serve->add_option("--s3-secret-key", fleet.s3_secret_key, "S3 secret key (read from $AWS_SECRET_ACCESS_KEY)")
      ->envname("AWS_SECRET_ACCESS_KEY");
  serve->add_option("--s3-credentials-file", fleet.s3_credentials_file,
                    "File with aws_access_key_id = ... and aws_secret_access_key = ... lines")
      ->check(CLI::ExistingFile);
  serve->add_option("--blob-cache-mb", fleet.blob_cache_mb,
                    "Disk for this node's cache of the fleet's blobs, least recently used out first (default 4096)")
      ->check(CLI::Range(uint64_t{16}, uint64_t{16'777'216}));
  serve->add_option("--node-id", fleet.node_id, "This node's name in the fleet (default: made once, kept in DATA/node-id)");
  serve->add_option("--build-claim-s", fleet.build_claim_s,
                    "A fleet's builds are claimed by one node for this long, renewed while they run; a node that "
                    "stops has its builds taken over by another after it (default 15)")
      ->check(CLI::Range(2, 600));
  serve->add_option("--advertise-host", fleet.advertise_host,
                    "Host other nodes and clients reach this node at (default: the address it listens on)");
  serve->callback([&] {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    serve_opts.grace = std::chrono::milliseconds(grace_ms);
    serve_opts.header_timeout = std::chrono::milliseconds(header_timeout_ms);
    serve_opts.ws_idle_timeout = std::chrono::seconds(ws_idle_s);
    serve_opts.build_timeout = std::chrono::seconds(build_timeout_s);
    serve_opts.wait_until = std::chrono::seconds(wait_until_s);
    auto s = nubo::server::runServer(serve_opts);
    if (!s.ok()) {
      std::fprintf(stderr, "error: %s\n", s.message().c_str());
      exit_code = nubo::exitCodeFor(s.code());
    }
  });

  // migrate: a single node's data into a fleet.
  nubo::server::MigrateOptions mig;
  mig.fleet.etcd_prefix = "/nubo/";
  auto* migrate = app.add_subcommand(
      "migrate", "Copy a stopped single node's apps, deployments, aliases, tokens, domains, env, audit log and "
                 "blobs into a fleet's etcd and S3 bucket (idempotent: run it again to resume)");
  migrate->add_option("--from", mig.data_dir, "The single node's data directory (default: $NUBO_DATA, else "
                                               "~/.local/share/nubo)");
  migrate->add_option("--to-etcd", mig.fleet.etcd, "The fleet's etcd endpoints, comma-separated")
      ->delimiter(',')
      ->required();
  migrate->add_option("--to-s3", mig.fleet.s3_endpoint, "The fleet's object store (http://host:port)")->required();
  migrate->add_option("--s3-bucket", mig.fleet.s3_bucket, "The fleet's bucket")->required();
  migrate->add_option("--s3-region", mig.fleet.s3_region, "Region the requests are signed for (default us-east-1)");
  migrate->add_option("--s3-access-key", mig.fleet.s3_access_key, "S3 access key (read from $AWS_ACCESS_KEY_ID)")
      ->envname("AWS_ACCESS_KEY_ID");
  migrate->add_option("--s3-secret-key", mig.fleet.s3_secret_key, "S3 secret key (read from $AWS_SECRET_ACCESS_KEY)")
      ->envname("AWS_SECRET_ACCESS_KEY");
  migrate->add_option("--s3-credentials-file", mig.fleet.s3_credentials_file,
                      "File with aws_access_key_id = ... and aws_secret_access_key = ... lines")
      ->check(CLI::ExistingFile);
  migrate->add_option("--etcd-prefix", mig.fleet.etcd_prefix, "The fleet's key prefix (default /nubo/)");
  migrate->add_option("--etcd-user", mig.fleet.etcd_user, "etcd user");
  migrate->add_option("--etcd-password", mig.fleet.etcd_password, "etcd password (also $NUBO_ETCD_PASSWORD)")
      ->envname("NUBO_ETCD_PASSWORD");
  migrate->add_option("--secret-key-file", mig.secret_key_file,
                      "The node's secret key (default DATA/secret.key); the fleet must seal with the same key");
  migrate->callback([&] {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    if (mig.data_dir.empty()) mig.data_dir = nubo::server::defaultDataDir();
    auto r = nubo::server::migrate(mig);
    if (!r.ok()) {
      std::fprintf(stderr, "error: %s\n", r.status().message().c_str());
      exit_code = nubo::exitCodeFor(r.status().code());
      return;
    }
    std::printf("migrated: %llu blobs copied (%llu bytes, each verified), %llu already there; %llu deployments "
                "copied, %llu already there; %llu alias moves, %llu tokens, %llu domains, %llu env values, %llu "
                "audit entries\n",
                (unsigned long long)r->blobs_copied, (unsigned long long)r->bytes_copied,
                (unsigned long long)r->blobs_present, (unsigned long long)r->deployments_copied,
                (unsigned long long)r->deployments_present, (unsigned long long)r->alias_moves,
                (unsigned long long)r->tokens, (unsigned long long)r->domains, (unsigned long long)r->env_values,
                (unsigned long long)r->audit_entries);
  });

  nubo::cli::addClientCommands(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return exit_code;
}
