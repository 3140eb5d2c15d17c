// The deployment manifest (`nubo.json`), see DESIGN.md "The manifest".
//
// parseManifest() validates everything and reports every problem at once:
// unknown fields, wrong types and out-of-range values, each naming the field
// path ("limits.memory_mb") and what is allowed. Every field has a default,
// so `{}` (or no nubo.json at all) is a valid manifest.
//
// The CLI validates before uploading (fail fast); the server validates again
// (it is the authority) and stores toJson() of the result, with defaults
// filled in, on the deployment.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/runtime_kind.h"
#include "common/status.h"

namespace nubo::manifest {

struct Limits {
  int memory_mb = 128;
  int timeout_ms = 10000;
  int concurrency = 32;
  int min_instances = 0;
  int max_instances = 4;
  int idle_ttl_s = 300;
  // The app's CPU weight, in CPUs' worth: under contention the app's
  // instances on a server together get CPU in proportion to it, however
  // many there are; alone they may use what is idle. A server may cap it
  // (--max-app-cpu).
  double cpu = 1.0;
};
inline constexpr double kMinCpu = 0.1, kMaxCpu = 16;

struct Permissions {
  bool network = false;
  int tmp_mb = 16;
};

struct Build {
  std::string builder;  // empty: detected
  std::string command;
  std::string output;   // relative directory of the build output
};

// How a static site answers beyond its files.
struct StaticOptions {
  // A single-page app's page: what paths that match no file and have no
  // extension (client-side routes, deep links) get, with 200.
  std::string fallback;
  // Response headers by path: "/exact" or "/prefix/*"; every rule that
  // matches adds its headers (at most 50 rules, 20 headers each).
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, std::string>>>> headers;
  // Redirects of exact paths, checked before the files (at most 200).
  struct Redirect {
    std::string from, to;
    int status = 308;  // 301, 302, 307 or 308
  };
  std::vector<Redirect> redirects;
};
// Whether a static rule's path ("/exact", or "/prefix/*") matches `path`.
bool staticPathMatches(std::string_view rule, std::string_view path);

// What must answer before a deployment goes live (besides its code loading
// and exporting a handler): a GET of `path` with 2xx or 3xx within
// limits.timeout_ms. Empty: no request is made.
struct Health {
  std::string path;  // "/healthz", optionally with a query
};

struct CronJob {
  std::string schedule;  // five-field cron expression
  std::string path;      // request path, starting with '/'
};

struct Manifest {
  std::string name;               // empty: chosen by the CLI (--app or folder name)
  std::string runtime = "static"; // a name of common/runtime_kind.h: static | node | native | exec
  std::string entry;              // runtime-specific entry point
  Build build;
  Limits limits;
  Permissions permissions;
  StaticOptions static_site;      // "static" in nubo.json
  Health health;
  std::map<std::string, std::string> env;
  std::vector<CronJob> cron;
};

// kInvalidArgument whose message lists every problem, one per line:
//   "nubo.json has 2 problems:\n  limits.memory_mb: ...\n  colour: unknown field ..."
Result<Manifest> parseManifest(const Json& j);
Result<Manifest> parseManifestText(std::string_view text);

// Canonical JSON with every field present ("name" only when set); parses back to the same Manifest.
Json toJson(const Manifest& m);

// The manifest's runtime (validated: always one the registry has).
inline RuntimeKind runtimeKind(const Manifest& m) { return runtimeFromName(m.runtime).value_or(RuntimeKind::kStatic); }

}  // namespace nubo::manifest
