// Server: the one place that builds the concrete components of `nubo serve`
// and wires them together (stores, router, gateway, control API, two HTTP
// servers), then runs until SIGINT/SIGTERM.
//
// Shutdown: stop accepting, let in-flight requests finish for up to
// `grace`, close what is left, exit 0.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "common/status.h"

namespace nubo::server {

// A fleet: nodes sharing etcd (metadata, routing, coordination) and an
// S3-compatible store (blobs). Empty `etcd`: a single node (SQLite and
// local blobs in the data directory).
struct FleetOptions {
  std::vector<std::string> etcd;  // endpoints, "http://h1:2379"
  std::string etcd_prefix = "/nubo/";
  std::string etcd_user, etcd_password;
  std::string etcd_ca, etcd_cert, etcd_key;  // TLS
  std::string s3_endpoint, s3_bucket, s3_region = "us-east-1";
  std::string s3_access_key, s3_secret_key;  // from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
  std::string s3_credentials_file;           // or a file: aws_access_key_id = ..., aws_secret_access_key = ...
  uint64_t blob_cache_mb = 4096;             // this node's cache of blobs
  std::string node_id;                       // "": DATA/node-id (made once)
  std::string advertise_host;                // how other nodes reach this one ("": the listen host)
  int build_claim_s = 15;                    // a build's claim lasts this long unrenewed (then another node takes it)
  bool enabled() const { return !etcd.empty(); }
};

struct ServerOptions {
  std::string data_dir;                       // empty: defaultDataDir()
  std::string listen = "127.0.0.1:8080";      // data plane
  std::string control = "127.0.0.1:7070";     // control plane
  std::string base_domain = "localhost";
  int threads = 0;                            // data-plane threads; 0: half the cores, at least one
  std::chrono::milliseconds grace{10'000};
  std::chrono::milliseconds header_timeout{10'000};  // slow clients get 408 after this
  uint64_t cache_mb = 256;                    // hot static file bytes in memory
  uint64_t max_upload_mb = 512;               // largest single file a deploy may upload
  uint64_t max_body_mb = 1024;                // largest request body a function may receive (streamed)
  uint64_t max_ws_message_mb = 16;            // largest WebSocket message a client may send a function
  std::chrono::milliseconds ws_idle_timeout{300'000};  // a WebSocket with no frame either way is closed (1001)
  uint64_t max_deployment_files = 100'000;    // files one deployment may hold (as expanded)
  uint64_t max_deployment_mb = 2048;          // bytes one deployment may hold (as expanded)
  size_t max_connections = 10'000;            // open client connections on each plane
  size_t max_connections_per_client = 256;    // from one address (0: no limit)
  int gc_interval_h = 24;                     // blob garbage collection (0: only `nubo gc`)
  int stems = 2;                              // pre-started generic node instances
  int max_stems = -1;                         // ...in bursts of cold starts (-1: sized from memory)
  std::chrono::milliseconds wait_until{30'000};  // ctx.waitUntil() work after a function's last response
  int build_concurrency = 2;                  // builds at once
  std::chrono::milliseconds build_timeout{10 * 60 * 1000};
  uint64_t build_max_output_files = 100'000;  // files a build's output may hold
  uint64_t build_max_output_mb = 1024;        // bytes a build's output may hold
  uint64_t build_max_disk_mb = 4096;          // disk a build may fill in its output, scratch and cache folders
  std::string sandbox = "auto";               // auto: every layer the kernel allows; strict: all or refuse; off
  // Builds and networked functions: auto (veth as root, else slirp), veth,
  // slirp, or host (the host's network namespace).
  std::string sandbox_network = "auto";
  std::string sandbox_subnet = "10.213.0.0/16";  // veth: sandbox addresses
  std::vector<std::string> sandbox_dns;       // resolvers inside (empty: the host's)
  std::vector<std::string> sandbox_deny;      // IPv4 networks sandboxes may not reach (veth)
  int sandbox_max_connections = 256;          // per sandbox, at a time
  double max_app_cpu = 4;                     // the largest limits.cpu granted
  std::vector<std::string> trust_proxy;       // front proxies whose X-Forwarded-* headers are kept
  std::string secret_key_file;                // the key secrets are sealed with ("": DATA/secret.key)
  bool rotate_secret_key = false;             // re-seal every secret under a new key at start
  bool write_client_config = true;            // write ~/.config/nubo/config.json if absent
  std::string metrics_token;                  // GET /metrics needs it as a Bearer token ("": open)
  size_t metrics_max_apps = 1000;             // apps named in metrics labels; the rest count as "(other)"
  FleetOptions fleet;
};

// Runs the server; returns when it has shut down. Errors at start-up
// (lock held, port in use, unreadable data dir) come back as a Status.
Status runServer(const ServerOptions& opts);

}  // namespace nubo::server
