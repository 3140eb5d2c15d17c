#include "cli/commands.h"

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "cli/hash_cache.h"
#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "cli/team_commands.h"
#include "cli/http_client.h"
#include "cli/ignore.h"
#include "cli/progress.h"
#include "cli/scanner.h"
#include "cli/uploader.h"
#include "common/client_config.h"
#include "common/fs.h"
#include "common/ids.h"
#include "common/clock.h"
#include "common/json.h"
#include "manifest/manifest.h"

namespace nubo::cli {
namespace {

// A fleet's nodes as this client reaches them (their advertised control
// addresses, with the same token); empty on a single node.
struct NodeClient {
  std::string id, url;
  std::unique_ptr<HttpClient> client;
};
Result<std::vector<NodeClient>> fleetClients(HttpClient& c) {
  ASSIGN_OR_RETURN(HttpResponse r, c.send("GET", "/v1/nodes"));
  std::vector<NodeClient> out;
  if (r.status == 404) return out;  // a single node
  RETURN_IF_ERROR(HttpClient::statusOf(r));
  ASSIGN_OR_RETURN(Json j, parseJson(r.body, "the server's node list"));
  for (const auto& n : j.value("nodes", Json::array())) {
    std::string url = n.value("control_url", "");
    out.push_back({n.value("id", ""), url, std::make_unique<HttpClient>(url, c.token())});
  }
  return out;
}

// Says on stderr which node's part is missing, so that none is silently left out.
void nodeMissing(const NodeClient& n, const Status& s) {
  std::fprintf(stderr, "nubo: node %s (%s) did not answer, its part is missing: %s\n", n.id.c_str(), n.url.c_str(),
               s.message().c_str());
}

// An app name from a folder name: lowercase, other characters become '-'.
std::string appNameFromDir(const std::string& dir) {
  std::string base = std::filesystem::path(dir).filename().string();
  std::string out;
  for (char c : base) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += ((l >= 'a' && l <= 'z') || (l >= '0' && l <= '9')) ? l : '-';
  }
  while (!out.empty() && !(out[0] >= 'a' && out[0] <= 'z')) out.erase(0, 1);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.substr(0, 63);
}

// "d1 (90%), d2 (10%)", or "d1" alone, from a "split" list.
std::string splitLine(const Json& j, const char* key = "split") {
  if (!j.contains(key) || !j[key].is_array() || j[key].empty()) return str(j, "deployment");
  std::string out;
  for (const auto& p : j[key]) {
    int w = p.value("weight", 100);
    out += (out.empty() ? "" : ", ") + str(p, "deployment") + (w == 100 ? "" : " (" + std::to_string(w) + "%)");
  }
  return out;
}

// "D" or "D1=90 D2=10" as the API's split list.
Result<Json> parseSplitArgs(const std::vector<std::string>& args) {
  Json split = Json::array();
  for (const auto& a : args) {
    size_t eq = a.find('=');
    if (eq == std::string::npos) {
      if (args.size() > 1) return InvalidArgument("give each deployment of a split its weight: D1=90 D2=10");
      split.push_back({{"deployment", a}, {"weight", 100}});
      continue;
    }
    std::string w = a.substr(eq + 1);
    if (w.empty() || w.size() > 3 || w.find_first_not_of("0123456789") != std::string::npos) {
      return InvalidArgument("weight \"" + w + "\" of " + a.substr(0, eq) + " must be a whole number from 1 to 100");
    }
    split.push_back({{"deployment", a.substr(0, eq)}, {"weight", std::stoi(w)}});
  }
  return split;
}

// ---- deploy -----------------------------------------------------------------

struct DeployOptions {
  std::string dir = ".";
  std::string app;
  std::string alias = "production";
  bool no_promote = false;
  bool json = false;
  int parallel = 8;
};

// Prints a deployment's build as it runs (server-sent events) until it is
// READY or FAILED; the final state, or kFailedPrecondition naming why the
// build failed.
struct BuildProgress {
  std::string state, error, cursor;  // cursor: of the last log line seen
};

// One connection to a build's event stream, until the server ends it.
Status readBuildEvents(HttpClient& client, const std::string& path, BuildProgress& p, bool print) {
  std::string buf;
  return client.stream(path, [&](std::string_view bytes) {
    buf.append(bytes);
    for (size_t end; (end = buf.find("\n\n")) != std::string::npos; buf.erase(0, end + 2)) {
      std::string event, data;
      std::string_view block(buf.data(), end);
      while (!block.empty()) {
        size_t nl = block.find('\n');
        std::string_view line = block.substr(0, nl);
        if (line.rfind("event: ", 0) == 0) event = line.substr(7);
        if (line.rfind("data: ", 0) == 0) data = line.substr(6);
        block.remove_prefix(nl == std::string_view::npos ? block.size() : nl + 1);
      }
      auto j = parseJson(data, "event");
      if (!j.ok() || !j->is_object()) continue;
      if (event == "log") {
        if (j->contains("cursor")) p.cursor = str(*j, "cursor");
        if (print) {
          std::printf("  %s %s\n", str(*j, "stream") == "nubo" ? "nubo |" : "     |", str(*j, "text").c_str());
          std::fflush(stdout);
        }
      } else if (event == "state") {
        p.state = str(*j, "state");
        p.error = str(*j, "error");
      }
    }
    return true;
  });
}

// Why a deployment is FAILED, as the CLI's error.
Status failedDeployment(const std::string& id, const std::string& error, const std::string& promote_alias) {
  std::string unchanged = promote_alias.empty() ? "" : "; " + promote_alias + " is unchanged";
  if (error.rfind("it failed to start", 0) == 0) {
    return FailedPrecondition("deployment " + id + " is FAILED: " + error + unchanged +
                              " (what it printed: nubo logs; the check: nubo build-logs " + id + ")");
  }
  return FailedPrecondition("the build of " + id + " failed: " + error + unchanged +
                            " (the whole log: nubo build-logs " + id + ")");
}

// A deployment that is not READY or FAILED yet: being built, or started once.
bool unfinished(const Json& d) {
  std::string state = str(d, "state");
  return state == "QUEUED" || state == "BUILDING" || state == "STARTING";
}

// `promote_alias`: the alias the deployment moves when READY ("" for none),
// so that losing the server mid-build can say what happens next.
Result<std::string> followBuild(HttpClient& client, const std::string& id, bool print,
                                const std::string& promote_alias) {
  BuildProgress p;
  // A stream that breaks off (a long build outlasting a connection limit, a
  // blip) is picked up again where it stopped.
  for (int attempt = 0;; ++attempt) {
    std::string path = ApiClient(client).eventsPath(id, p.cursor);
    Status s = readBuildEvents(client, path, p, print);
    if (s.ok() && (p.state == "READY" || p.state == "FAILED")) break;
    if (!s.ok() && s.code() != Code::kUnavailable) return s;
    if (attempt == 100) {
      // The server went away mid-build. The deployment is kept: its build
      // starts over when the server is back, and still moves its alias.
      std::string why = s.ok() ? "the build events of " + id + " ended early" : s.message();
      std::string next = promote_alias.empty() ? "it will not be promoted"
                                               : "once it is READY, " + promote_alias + " moves to it";
      return Unavailable("lost the server during the build of " + id + " (" + why +
                         "). The deployment is kept: when the server is back its build starts over, and " + next +
                         ". Follow it with: nubo build-logs " + id);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (p.state == "FAILED") return failedDeployment(id, p.error, promote_alias);
  return p.state;
}

Result<Json> deploy(const DeployOptions& o, Progress& progress) {
  auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::error_code ec;
  std::string dir = std::filesystem::canonical(o.dir, ec).string();
  if (ec) return NotFound("cannot deploy " + o.dir + ": " + ec.message());

  // The manifest: validated here to fail before uploading, and by the server.
  Json manifest_json = Json::object();
  manifest::Manifest manifest;
  if (auto text = readFile(dir + "/nubo.json", 1 << 20); text.ok()) {
    ASSIGN_OR_RETURN(manifest_json, parseJson(*text, "nubo.json"));
    ASSIGN_OR_RETURN(manifest, manifest::parseManifest(manifest_json));
  } else if (text.status().code() != Code::kNotFound) {
    return text.status();
  }
  std::string app = !o.app.empty() ? o.app : !manifest.name.empty() ? manifest.name : appNameFromDir(dir);
  if (app.empty()) return InvalidArgument("cannot derive an app name from the folder name; pass --app NAME");
  RETURN_IF_ERROR(validateAppName(app, o.app.empty() ? "app name (from the folder; pass --app to choose)" : "--app"));
  if (!o.no_promote) RETURN_IF_ERROR(validateAliasName(o.alias, "--alias"));
  ASSIGN_OR_RETURN(ClientConfig cfg, clientConfig());

  // A project the build installs dependencies for (a lock file, or a build
  // command) leaves its installed node_modules behind, unless .nuboignore
  // says "!node_modules": the build throws it away, and its .bin links
  // point outside it.
  std::string ignore_text;
  if (auto text = readFile(dir + "/.nuboignore", 1 << 20); text.ok()) ignore_text = *text;
  bool installs = ::access((dir + "/package-lock.json").c_str(), F_OK) == 0 || !manifest.build.command.empty();
  IgnoreRules rules = IgnoreRules::parse((installs ? "node_modules/\n" : "") + ignore_text);
  if (installs && rules.ignored("node_modules", true) && ::access((dir + "/node_modules").c_str(), F_OK) == 0) {
    progress.line("Skipping node_modules/: the build installs the dependencies (\"!node_modules\" in .nuboignore "
                  "uploads it)");
  }

  int64_t scan_start = nowNs();
  ASSIGN_OR_RETURN(std::vector<ScannedFile> files, scan(dir, rules));
  if (files.empty()) return InvalidArgument(dir + " has no files to deploy (after .nuboignore)");
  std::string cache_path = dir + "/.nubo/hashcache";
  HashCache cache = HashCache::load(cache_path);
  uint64_t total = 0;
  for (const auto& f : files) total += f.key.size;
  progress.start("Hashing", files.size(), total);
  ASSIGN_OR_RETURN(size_t read, hash(dir, files, cache, scan_start, [&](size_t n, uint64_t b) { progress.update(n, b); }));
  if (Status s = cache.save(cache_path); !s.ok()) progress.line("note: hash cache not saved: " + s.message());
  size_t file_count = files.size();
  ASSIGN_OR_RETURN(Snapshot snap, snapshot(std::move(files)));
  char buf[160];
  std::snprintf(buf, sizeof buf, "Hashed %zu files (%s), %zu read, in %.2fs", file_count,
                humanBytes(snap.total_bytes).c_str(), read, seconds());
  progress.finish(buf);

  HttpClient client(cfg.server, cfg.token);
  ASSIGN_OR_RETURN(UploadPlan plan, negotiate(client, snap));
  size_t objects = plan.files.size() + plan.trees.size();
  uint64_t upload_bytes = plan.file_bytes + plan.tree_bytes;
  progress.start("Uploading", objects, upload_bytes);
  RETURN_IF_ERROR(upload({cfg.server, cfg.token, dir}, snap, plan, o.parallel,
                         [&](size_t n, uint64_t b) { progress.update(n, b); }));
  std::snprintf(buf, sizeof buf, "Uploaded %zu new files and %zu trees (%s) in %.2fs", plan.files.size(),
                plan.trees.size(), humanBytes(upload_bytes).c_str(), seconds());
  progress.finish(buf);

  Json req = {{"root", snap.root}, {"manifest", manifest_json}, {"promote", !o.no_promote}, {"alias", o.alias}};
  ASSIGN_OR_RETURN(Json d, ApiClient(client).createDeployment(app, req));
  if (unfinished(d)) {
    if (!o.json && str(d, "state") != "STARTING") std::printf("Building %s:\n", str(d, "id").c_str());
    ASSIGN_OR_RETURN(d["state"], followBuild(client, str(d, "id"), !o.json && str(d, "state") != "STARTING",
                                             o.no_promote ? "" : o.alias));
  } else if (str(d, "state") == "FAILED") {
    return failedDeployment(str(d, "id"), str(d, "error"), o.no_promote ? "" : o.alias);
  }
  return Json{{"app", app},
              {"deployment", str(d, "id")},
              {"state", str(d, "state")},
              {"url", str(d, "url")},
              {"production_url", str(d, "production_url")},
              {"files", d.value("files", uint64_t{0})},
              {"bytes", d.value("bytes", uint64_t{0})},
              {"uploaded_files", plan.files.size()},
              {"uploaded_bytes", upload_bytes},
              {"seconds", seconds()},
              {"promoted", !o.no_promote},
              {"alias_url", str(d, "alias_url")}};
}

int runDeploy(const DeployOptions& o) {
  Progress progress(!o.json);
  auto r = deploy(o, progress);
  if (!r.ok()) return fail(r.status());
  const Json& j = *r;
  if (o.json) {
    Json out = {{"app", j["app"]},   {"deployment", j["deployment"]}, {"state", j["state"]},
                {"url", j["url"]},   {"production_url", j["production_url"]}, {"files", j["files"]},
                {"bytes", j["bytes"]}, {"uploaded_files", j["uploaded_files"]},
                {"uploaded_bytes", j["uploaded_bytes"]}};
    std::printf("%s\n", dumpJson(out).c_str());
    return 0;
  }
  std::printf("Deployed %s: %s (%s) in %.2fs\n", str(j, "app").c_str(), str(j, "deployment").c_str(),
              str(j, "state").c_str(), j["seconds"].get<double>());
  std::printf("  Deployment: %s\n", str(j, "url").c_str());
  if (!j["promoted"].get<bool>()) {
    std::printf("  Production: %s (unchanged; not promoted)\n", str(j, "production_url").c_str());
  } else if (o.alias == "production") {
    std::printf("  Production: %s\n", str(j, "production_url").c_str());
  } else {
    std::printf("  Alias %s: %s\n", o.alias.c_str(), str(j, "alias_url").c_str());
  }
  return 0;
}

// ---- init -----------------------------------------------------------------------

struct Template {
  std::string_view name;
  std::string_view what;
  std::vector<std::pair<std::string_view, std::string_view>> files;  // "$NAME" is the app's name
};

const std::vector<Template>& templates() {
  static const std::vector<Template> all = {
      {"node", "a JavaScript function (fetch handler)",
       {{"nubo.json", "{\n  \"name\": \"$NAME\",\n  \"runtime\": \"node\"\n}\n"},
        {"index.js", "export default {\n"
                     "  async fetch(request, env, ctx) {\n"
                     "    const url = new URL(request.url);\n"
                     "    return Response.json({ hello: \"world\", path: url.pathname });\n"
                     "  },\n"
                     "};\n"}}},
      {"ts", "a TypeScript function, bundled with esbuild when deployed",
       {{"nubo.json", "{\n  \"name\": \"$NAME\",\n  \"runtime\": \"node\",\n  \"entry\": \"index.ts\"\n}\n"},
        {"package.json", "{\n  \"name\": \"$NAME\",\n  \"private\": true,\n  \"version\": \"0.1.0\"\n}\n"},
        {"index.ts", "interface Greeting {\n  hello: string;\n  path: string;\n}\n\n"
                     "export default {\n"
                     "  async fetch(request: Request): Promise<Response> {\n"
                     "    const greeting: Greeting = { hello: \"world\", path: new URL(request.url).pathname };\n"
                     "    return Response.json(greeting);\n"
                     "  },\n"
                     "};\n"}}},
      {"native", "a C++ function built with the nubo SDK",
       {{"nubo.json", "{\n  \"name\": \"$NAME\",\n  \"runtime\": \"native\"\n}\n"},
        {"main.cc", "#include \"nubo.h\"\n\n"
                    "// Called for every request, on one of a few threads.\n"
                    "nubo::Response handle(const nubo::Request& req) {\n"
                    "  return nubo::Response::json(\"{\\\"hello\\\":\\\"world\\\",\\\"path\\\":\\\"\" +\n"
                    "                              nubo::jsonEscape(req.pathname()) + \"\\\"}\");\n"
                    "}\n"}}},
      {"exec", "an HTTP server in Python (any program serving on $PORT works)",
       {{"nubo.json", "{\n  \"name\": \"$NAME\",\n  \"runtime\": \"exec\",\n  \"entry\": \"python3 server.py\"\n}\n"},
        {"server.py", "import http.server, json, os\n\n\n"
                      "class Handler(http.server.BaseHTTPRequestHandler):\n"
                      "    def do_GET(self):\n"
                      "        body = json.dumps({\"hello\": \"world\", \"path\": self.path}, separators=(\",\", \":\")).encode()\n"
                      "        self.send_response(200)\n"
                      "        self.send_header(\"content-type\", \"application/json\")\n"
                      "        self.send_header(\"content-length\", str(len(body)))\n"
                      "        self.end_headers()\n"
                      "        self.wfile.write(body)\n\n\n"
                      "http.server.ThreadingHTTPServer((\"127.0.0.1\", int(os.environ[\"PORT\"])), Handler).serve_forever()\n"}}},
      {"static", "a static site",
       {{"nubo.json", "{\n  \"name\": \"$NAME\",\n  \"runtime\": \"static\"\n}\n"},
        {"index.html", "<!doctype html>\n<title>$NAME</title>\n<h1>Hello from $NAME</h1>\n"},
        {"404.html", "<!doctype html>\n<title>Not found</title>\n<h1>Not found</h1>\n"}}},
  };
  return all;
}

Status runInit(const std::string& dir, const std::string& name_flag, const std::string& template_name) {
  const Template* t = nullptr;
  std::string names;
  for (const auto& candidate : templates()) {
    names += (names.empty() ? "" : ", ") + std::string(candidate.name);
    if (candidate.name == template_name) t = &candidate;
  }
  if (!t) {
    return InvalidArgument("--template: no template \"" + template_name + "\" (there are: " + names + ")");
  }
  std::error_code ec;
  if (std::filesystem::exists(dir, ec) && !std::filesystem::is_empty(dir, ec)) {
    return FailedPrecondition(dir + " exists and is not empty; choose a new folder for the project");
  }
  std::string name = name_flag;
  if (name.empty()) name = std::filesystem::absolute(dir, ec).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::absolute(dir, ec).lexically_normal().parent_path().filename().string();
  if (Status s = validateAppName(name, "app name"); !s.ok()) {
    return InvalidArgument(s.message() + "; pass a valid one with --name");
  }
  RETURN_IF_ERROR(makeDirs(dir));
  for (const auto& [path, text] : t->files) {
    std::string content(text);
    for (size_t at; (at = content.find("$NAME")) != std::string::npos;) content.replace(at, 5, name);
    RETURN_IF_ERROR(writeFileAtomic(dir + "/" + std::string(path), content, 0644));
  }
  std::printf("Created %s: %s (app \"%s\")\n  Deploy it: nubo deploy %s\n", dir.c_str(), std::string(t->what).c_str(),
              name.c_str(), dir.c_str());
  return Status::Ok();
}

// ---- other commands -----------------------------------------------------------

int runLogin(const std::string& server, const std::string& token) {
  HttpClient client(server, token);
  auto r = ApiClient(client).whoami();
  if (!r.ok()) return fail(r.status().withContext("login to " + server + " failed"));
  std::string path = clientConfigPath();
  if (Status s = saveClientConfig(path, {client.baseUrl(), token}); !s.ok()) return fail(s);
  std::printf("Logged in to %s as %s (%s); saved %s\n", client.baseUrl().c_str(), str(*r, "name").c_str(),
              str(*r, "role").c_str(), path.c_str());
  return 0;
}

}  // namespace

void addClientCommands(CLI::App& app, int* exit_code) {
  addTeamCommands(app, exit_code);
  // deploy
  auto opts = std::make_shared<DeployOptions>();
  auto* deploy = app.add_subcommand("deploy", "Deploy a folder; prints its immutable URL and the production URL");
  deploy->add_option("dir", opts->dir, "Folder to deploy (default: current folder)");
  deploy->add_option("--app", opts->app, "App name (default: nubo.json \"name\", else the folder name)");
  deploy->add_option("--alias", opts->alias, "Alias to point at the new deployment (default: production)");
  deploy->add_flag("--no-promote", opts->no_promote, "Do not move any alias; only the deployment URL serves it");
  deploy->add_flag("--json", opts->json, "Print one JSON object instead of text");
  deploy->add_option("--parallel", opts->parallel, "Uploads at once (default 8)")->check(CLI::Range(1, 64));
  deploy->callback([opts, exit_code] { *exit_code = runDeploy(*opts); });

  // redeploy DEPLOYMENT: the same source built again as a new deployment
  struct RedeployOptions {
    std::string id, alias = "production";
    bool no_promote = false, json = false, env_only = false;
  };
  auto ro = std::make_shared<RedeployOptions>();
  auto* redeploy = app.add_subcommand("redeploy", "Build a deployment's source again as a new deployment");
  redeploy->add_option("deployment", ro->id, "Deployment id")->required();
  redeploy->add_option("--alias", ro->alias, "Alias to point at the new deployment (default: production)");
  redeploy->add_flag("--no-promote", ro->no_promote, "Do not move any alias");
  redeploy->add_flag("--json", ro->json, "Print the new deployment as JSON");
  redeploy->add_flag("--env-only", ro->env_only,
                     "Reuse its build output as it is, with the app's env as it is now (no build)");
  redeploy->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      Json req = {{"alias", ro->alias}, {"promote", !ro->no_promote}, {"env_only", ro->env_only}};
      ASSIGN_OR_RETURN(Json d, ApiClient(c).redeploy(ro->id, req));
      if (!ro->json) std::printf("Redeploying %s as %s:\n", ro->id.c_str(), str(d, "id").c_str());
      if (unfinished(d)) {
        ASSIGN_OR_RETURN(d["state"], followBuild(c, str(d, "id"), !ro->json, ro->no_promote ? "" : ro->alias));
      } else if (str(d, "state") == "FAILED") {
        return failedDeployment(str(d, "id"), str(d, "error"), ro->no_promote ? "" : ro->alias);
      }
      if (ro->json) return printJson(d), Status::Ok();
      std::printf("Deployed %s: %s (%s)\n  Deployment: %s\n", str(d, "app").c_str(), str(d, "id").c_str(),
                  str(d, "state").c_str(), str(d, "url").c_str());
      return Status::Ok();
    });
  });

  // build-logs DEPLOYMENT
  auto bl_id = std::make_shared<std::string>();
  auto bl_json = std::make_shared<bool>(false);
  auto* build_logs = app.add_subcommand("build-logs", "Show a deployment's build log");
  build_logs->add_option("deployment", *bl_id, "Deployment id")->required();
  build_logs->add_flag("--json", *bl_json, "Print JSON");
  build_logs->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json page, ApiClient(c).buildLog(*bl_id));
      if (*bl_json) return printJson(page), Status::Ok();
      for (const auto& l : page["lines"]) {
        std::printf("%s %s\n", str(l, "stream") == "nubo" ? "nubo |" : "     |", str(l, "text").c_str());
      }
      std::printf("(%s%s)\n", str(page, "state").c_str(),
                  page.contains("error") ? (": " + str(page, "error")).c_str() : "");
      return Status::Ok();
    });
  });

  // init [--template T] DIR
  struct InitOptions {
    std::string dir, name, tmpl = "node";
  };
  auto io = std::make_shared<InitOptions>();
  auto* init = app.add_subcommand("init", "Create a new project folder that deploys as it is");
  init->add_option("dir", io->dir, "Folder to create")->required();
  init->add_option("--template", io->tmpl, "node (default), ts, native, exec or static");
  init->add_option("--name", io->name, "App name (default: the folder's name)");
  init->callback([=] {
    Status s = runInit(io->dir, io->name, io->tmpl);
    *exit_code = s.ok() ? 0 : fail(s);
  });

  // login
  auto login_server = std::make_shared<std::string>();
  auto login_token = std::make_shared<std::string>();
  auto* login = app.add_subcommand("login", "Save the server URL and API token for later commands");
  login->add_option("--server", *login_server, "Control-plane URL, e.g. http://127.0.0.1:7070")->required();
  login->add_option("--token", *login_token, "API token (the admin token is in DATA/admin.token)")->required();
  login->callback([=] { *exit_code = runLogin(*login_server, *login_token); });

  // apps ls / rm
  auto* apps = app.add_subcommand("apps", "List or remove apps");
  apps->require_subcommand(1);
  auto apps_json = std::make_shared<bool>(false);
  auto* apps_ls = apps->add_subcommand("ls", "List apps with their production deployment");
  apps_ls->add_flag("--json", *apps_json, "Print JSON");
  apps_ls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listApps());
      if (*apps_json) return printJson(r["apps"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"APP", "PRODUCTION", "URL"}};
      for (const auto& a : r["apps"]) rows.push_back({str(a, "name"), str(a, "production"), str(a, "url")});
      printTable(rows);
      return Status::Ok();
    });
  });
  auto rm_app = std::make_shared<std::string>();
  auto* apps_rm = apps->add_subcommand("rm", "Remove an app with all its deployments and aliases");
  apps_rm->add_option("app", *rm_app, "App name")->required();
  apps_rm->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(*rm_app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).deleteApp(*rm_app));
      std::printf("Removed app %s\n", rm_app->c_str());
      return Status::Ok();
    });
  });

  // deployments ls APP
  auto* deps = app.add_subcommand("deployments", "List an app's deployments");
  deps->require_subcommand(1);
  auto deps_app = std::make_shared<std::string>();
  auto deps_json = std::make_shared<bool>(false);
  auto deps_limit = std::make_shared<int>(20);
  auto* deps_ls = deps->add_subcommand("ls", "List deployments, newest first");
  deps_ls->add_option("app", *deps_app, "App name")->required();
  deps_ls->add_option("--limit", *deps_limit, "How many (default 20; 0 for all)")->check(CLI::NonNegativeNumber);
  deps_ls->add_flag("--json", *deps_json, "Print JSON");
  deps_ls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(*deps_app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listDeployments(*deps_app, static_cast<size_t>(*deps_limit)));
      if (*deps_json) return printJson(r["deployments"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"DEPLOYMENT", "STATE", "CREATED", "FILES", "SIZE", "ALIASES", "URL"}};
      for (const auto& d : r["deployments"]) {
        std::string aliases;
        for (const auto& a : d["aliases"]) aliases += (aliases.empty() ? "" : ",") + a.get<std::string>();
        rows.push_back({str(d, "id"), str(d, "state"), age(d.value("created_ms", int64_t{0})), str(d, "files"),
                        humanBytes(d.value("bytes", uint64_t{0})), aliases.empty() ? "-" : aliases, str(d, "url")});
      }
      printTable(rows);
      return Status::Ok();
    });
  });

  // alias ls / set
  auto* alias = app.add_subcommand("alias", "List or set an app's aliases");
  alias->require_subcommand(1);
  auto alias_app = std::make_shared<std::string>();
  auto alias_json = std::make_shared<bool>(false);
  auto* alias_ls = alias->add_subcommand("ls", "List aliases and where they point");
  alias_ls->add_option("app", *alias_app, "App name")->required();
  alias_ls->add_flag("--json", *alias_json, "Print JSON");
  alias_ls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(*alias_app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listAliases(*alias_app));
      if (*alias_json) return printJson(r["aliases"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"ALIAS", "DEPLOYMENT", "UPDATED", "URL"}};
      for (const auto& a : r["aliases"]) {
        rows.push_back({str(a, "name"), splitLine(a), age(a.value("updated_ms", int64_t{0})), str(a, "url")});
      }
      printTable(rows);
      return Status::Ok();
    });
  });
  struct SetOpts {
    std::string app, alias;
    std::vector<std::string> targets;
  };
  auto so = std::make_shared<SetOpts>();
  auto* alias_set = alias->add_subcommand(
      "set", "Point ALIAS at DEPLOYMENT, or split its traffic: D1=90 D2=10 (up to 4, weights summing to 100)");
  alias_set->add_option("app", so->app, "App name")->required();
  alias_set->add_option("alias", so->alias, "Alias name")->required();
  alias_set->add_option("deployments", so->targets, "DEPLOYMENT, or DEPLOYMENT=WEIGHT for each part of a split")
      ->required();
  alias_set->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(so->app));
      RETURN_IF_ERROR(validateAliasName(so->alias));
      ASSIGN_OR_RETURN(Json split, parseSplitArgs(so->targets));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).setAlias(so->app, so->alias, {{"split", split}}));
      std::printf("%s of %s now sends traffic to %s (was %s)\n", so->alias.c_str(), so->app.c_str(),
                  splitLine(r).c_str(), r["previous_split"].empty() ? "nothing" : splitLine(r, "previous_split").c_str());
      return Status::Ok();
    });
  });

  // promote APP DEPLOYMENT [--alias A]
  auto promote_args = std::make_shared<std::array<std::string, 3>>();
  (*promote_args)[2] = "production";
  auto promote_percent = std::make_shared<int>(100);
  auto* promote = app.add_subcommand("promote", "Point the production alias (or --alias) at DEPLOYMENT");
  promote->add_option("app", (*promote_args)[0], "App name")->required();
  promote->add_option("deployment", (*promote_args)[1], "Deployment id")->required();
  promote->add_option("--alias", (*promote_args)[2], "Alias to move (default: production)");
  promote->add_option("--percent", *promote_percent,
                      "Send only this share of the traffic to DEPLOYMENT (a canary); the rest stays where it was")
      ->check(CLI::Range(1, 100));
  promote->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      auto& [a, d, al] = *promote_args;
      RETURN_IF_ERROR(validateAppName(a));
      RETURN_IF_ERROR(validateAliasName(al, "--alias"));
      Json body = {{"deployment", d}, {"alias", al}, {"percent", *promote_percent}};
      ASSIGN_OR_RETURN(Json r, ApiClient(c).promote(a, body));
      std::printf("Promoted %s to %s of %s: %s (was %s)\n", d.c_str(), al.c_str(), a.c_str(), splitLine(r).c_str(),
                  r["previous_split"].empty() ? "nothing" : splitLine(r, "previous_split").c_str());
      return Status::Ok();
    });
  });

  // ps [APP]
  auto ps_app = std::make_shared<std::string>();
  auto ps_json = std::make_shared<bool>(false);
  // gc: remove the blobs no deployment needs
  auto gc_json = std::make_shared<bool>(false);
  auto gc_grace = std::make_shared<int64_t>(3600);
  auto* gc = app.add_subcommand("gc", "Remove stored files and trees that no deployment needs");
  gc->add_option("--grace-s", *gc_grace,
                 "Keep what was uploaded or found stored this recently, for deploys in progress (default 3600)")
      ->check(CLI::Range(int64_t{0}, int64_t{30} * 86400));
  gc->add_flag("--json", *gc_json, "Print the report as JSON");
  gc->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      Json req = {{"grace_s", *gc_grace}};
      ASSIGN_OR_RETURN(Json r, ApiClient(c).collectGarbage(req));
      if (*gc_json) return printJson(r), Status::Ok();
      std::printf("Removed %s in %s blobs; %s in %s blobs remain\n",
                  humanBytes(r.value("removed_bytes", uint64_t{0})).c_str(), str(r, "removed").c_str(),
                  humanBytes(r.value("bytes", uint64_t{0}) - r.value("removed_bytes", uint64_t{0})).c_str(),
                  std::to_string(r.value("blobs", uint64_t{0}) - r.value("removed", uint64_t{0})).c_str());
      return Status::Ok();
    });
  });

  auto* ps = app.add_subcommand("ps", "List running function instances");
  ps->add_option("app", *ps_app, "Only this app's instances");
  ps->add_flag("--json", *ps_json, "Print a JSON array");
  ps->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      if (!ps_app->empty()) RETURN_IF_ERROR(validateAppName(*ps_app));
      // A fleet: every node's instances, each with its node.
      ASSIGN_OR_RETURN(auto nodes, fleetClients(c));
      Json all = Json::array();
      if (nodes.empty()) {
        ASSIGN_OR_RETURN(Json r, ApiClient(c).instances(*ps_app));
        all = r["instances"];
      }
      for (const auto& n : nodes) {
        auto r = ApiClient(*n.client).instances(*ps_app);
        if (!r.ok()) {
          nodeMissing(n, r.status());
          continue;
        }
        for (auto i : (*r)["instances"]) {
          i["node"] = n.id;
          all.push_back(std::move(i));
        }
      }
      if (*ps_json) {
        std::printf("%s\n", dumpJson(all).c_str());
        return Status::Ok();
      }
      std::vector<std::vector<std::string>> rows{{"APP", "DEPLOYMENT", "PID", "STATE", "INFLIGHT", "MEMORY", "AGE"}};
      if (!nodes.empty()) rows[0].insert(rows[0].begin(), "NODE");
      for (const auto& i : all) {
        char age[32];
        std::snprintf(age, sizeof age, "%.0fs", i.value("age_s", 0.0));
        rows.push_back({str(i, "app"), str(i, "deployment"), str(i, "pid"), str(i, "state"), str(i, "inflight"),
                        humanBytes(i.value("rss_bytes", uint64_t{0})), age});
        if (!nodes.empty()) rows.back().insert(rows.back().begin(), str(i, "node"));
      }
      printTable(rows);
      return Status::Ok();
    });
  });

  // nodes ls: a fleet's nodes.
  auto* nodes = app.add_subcommand("nodes", "A fleet's nodes");
  nodes->require_subcommand(1);
  auto nodes_json = std::make_shared<bool>(false);
  auto* nodes_ls = nodes->add_subcommand("ls", "List the fleet's nodes: id, addresses, version, last heartbeat, "
                                               "instances, load");
  nodes_ls->add_flag("--json", *nodes_json, "Print a JSON array");
  nodes_ls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json r, c.call("GET", "/v1/nodes"));
      if (*nodes_json) {
        std::printf("%s\n", dumpJson(r["nodes"]).c_str());
        return Status::Ok();
      }
      int64_t now = wallMillis();
      std::vector<std::vector<std::string>> rows{
          {"NODE", "DATA", "CONTROL", "VERSION", "HEARTBEAT", "INSTANCES", "IN-FLIGHT", "LOAD", "READY"}};
      for (const auto& n : r["nodes"]) {
        char beat[32], load[32];
        std::snprintf(beat, sizeof beat, "%.1fs ago", static_cast<double>(now - n.value("heartbeat_ms", int64_t{0})) / 1000);
        std::snprintf(load, sizeof load, "%.2f", n.value("load", 0.0));
        rows.push_back({str(n, "id"), str(n, "data_url"), str(n, "control_url"), str(n, "version"), beat,
                        str(n, "instances"), str(n, "in_flight"), load, n.value("ready", false) ? "yes" : "no"});
      }
      printTable(rows);
      return Status::Ok();
    });
  });

  // logs APP [--requests|--all] [--since T] [--until T] [--status S] [--grep T] [--request ID] [--deployment D] [-f]
  struct LogsOpts {
    std::string app, deployment, since, until, status, grep, request;
    bool follow = false, json = false, requests = false, all = false;
    int lines = 100;
  };
  auto lo = std::make_shared<LogsOpts>();
  auto* logs = app.add_subcommand(
      "logs", "Show what an app's functions wrote (stdout/stderr), the platform's notes, and (--requests) one "
              "access record per request; search them with the filters");
  logs->add_option("app", lo->app, "App name")->required();
  logs->add_flag("--requests", lo->requests,
                 "Access records only: time, deployment, request id, method, path, status, duration, bytes, cold/warm");
  logs->add_flag("--all", lo->all, "Access records and what functions wrote, together");
  logs->add_option("--since", lo->since, "Only lines since then: a duration back (90m, 1h, 2d) or a UTC time");
  logs->add_option("--until", lo->until, "Only lines until then: a duration back or a UTC time");
  logs->add_option("--status", lo->status, "Only requests with this status or class (503, 5xx); implies --requests");
  logs->add_option("--grep", lo->grep, "Only lines containing TEXT (ignoring case)");
  logs->add_option("--request", lo->request, "Only the lines of one request (its X-Nubo-Request-Id); implies --all");
  logs->add_option("--deployment", lo->deployment, "Only this deployment's lines");
  logs->add_flag("-f,--follow", lo->follow, "Keep printing new lines as they are written (Ctrl-C to stop)");
  logs->add_option("-n,--lines", lo->lines, "How many recent lines first (default 100)")->check(CLI::Range(0, 100000));
  logs->add_flag("--json", lo->json, "One JSON object per line");
  logs->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(lo->app));
      if (lo->requests && lo->all) return InvalidArgument("--requests and --all: choose one");
      ApiClient api(c);
      ApiClient::LogQuery query;
      query.deployment = lo->deployment;
      query.limit = static_cast<size_t>(lo->lines);
      query.kind = lo->requests || (!lo->status.empty() && !lo->all) ? "requests"
                   : lo->all || !lo->request.empty()                  ? ""
                                                                      : "output";
      query.status = lo->status;
      query.grep = lo->grep;
      query.request_id = lo->request;
      int64_t now = wallMillis();
      if (!lo->since.empty()) {
        ASSIGN_OR_RETURN(query.since_ms, parseTimeArg(lo->since, now, "--since"));
      }
      if (!lo->until.empty()) {
        ASSIGN_OR_RETURN(query.until_ms, parseTimeArg(lo->until, now, "--until"));
      }
      std::mutex print_mu;
      auto print = [&](const Json& page) {
        std::lock_guard lock(print_mu);
        for (const auto& l : page["lines"]) {
          if (lo->json) {
            std::printf("%s\n", dumpJson(l).c_str());
            continue;
          }
          if (l.contains("node")) std::printf("%s ", str(l, "node").c_str());
          time_t secs = static_cast<time_t>(l.value("ts_ms", int64_t{0}) / 1000);
          struct tm tm {};
          ::localtime_r(&secs, &tm);
          char when[32];
          std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
          std::string rid = l.value("request_id", std::string());
          std::printf("%s.%03d %s %s %-7s %s\n", when, static_cast<int>(l.value("ts_ms", int64_t{0}) % 1000),
                      str(l, "deployment").c_str(), rid.empty() ? "-" : rid.c_str(), str(l, "stream").c_str(),
                      str(l, "text").c_str());
        }
        std::fflush(stdout);
      };
      ASSIGN_OR_RETURN(auto nodes, fleetClients(c));
      if (nodes.empty()) {
        ASSIGN_OR_RETURN(Json page, api.logs(lo->app, query));
        print(page);
        query.limit = 1000;
        query.wait_s = 25;
        while (lo->follow) {
          query.after = page.value("cursor", uint64_t{0});
          ASSIGN_OR_RETURN(page, api.logs(lo->app, query));
          print(page);
        }
        return Status::Ok();
      }
      // A fleet: each node keeps what ran on it. Their newest lines, merged
      // by time, each with its node; then each node followed on its own.
      std::vector<std::optional<uint64_t>> cursors(nodes.size());
      Json merged = Json::array();
      for (size_t i = 0; i < nodes.size(); ++i) {
        auto page = ApiClient(*nodes[i].client).logs(lo->app, query);
        if (!page.ok()) {
          nodeMissing(nodes[i], page.status());
          continue;
        }
        cursors[i] = page->value("cursor", uint64_t{0});
        for (auto l : (*page)["lines"]) {
          l["node"] = nodes[i].id;
          merged.push_back(std::move(l));
        }
      }
      std::stable_sort(merged.begin(), merged.end(), [](const Json& a, const Json& b) {
        return a.value("ts_ms", int64_t{0}) < b.value("ts_ms", int64_t{0});
      });
      if (merged.size() > query.limit) merged.erase(merged.begin(), merged.end() - static_cast<long>(query.limit));
      print(Json{{"lines", merged}});
      if (!lo->follow) return Status::Ok();
      query.limit = 1000;
      query.wait_s = 25;
      std::vector<std::thread> followers;
      for (size_t i = 0; i < nodes.size(); ++i) {
        followers.emplace_back([&, i, q = query]() mutable {
          bool failing = false;
          for (;;) {
            q.after = cursors[i];
            auto page = ApiClient(*nodes[i].client).logs(lo->app, q);
            if (!page.ok()) {
              if (!failing) nodeMissing(nodes[i], page.status());
              failing = true;
              std::this_thread::sleep_for(std::chrono::seconds(5));  // asked again: it may come back
              continue;
            }
            if (failing) std::fprintf(stderr, "nubo: node %s answers again\n", nodes[i].id.c_str());
            failing = false;
            // (A node that was away from the start is followed from its newest lines.)
            if (!cursors[i] && !q.after) {
              cursors[i] = page->value("cursor", uint64_t{0});
              continue;
            }
            cursors[i] = page->value("cursor", uint64_t{0});
            for (auto& l : (*page)["lines"]) l["node"] = nodes[i].id;
            print(*page);
          }
        });
      }
      for (auto& t : followers) t.join();  // (until interrupted)
      return Status::Ok();
    });
  });

  // rollback APP [--alias A]
  auto rollback_args = std::make_shared<std::array<std::string, 2>>();
  (*rollback_args)[1] = "production";
  auto* rollback = app.add_subcommand("rollback", "Move the production alias (or --alias) back to where it pointed before");
  rollback->add_option("app", (*rollback_args)[0], "App name")->required();
  rollback->add_option("--alias", (*rollback_args)[1], "Alias to roll back (default: production)");
  rollback->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      auto& [a, al] = *rollback_args;
      RETURN_IF_ERROR(validateAppName(a));
      RETURN_IF_ERROR(validateAliasName(al, "--alias"));
      Json body = {{"alias", al}};
      ASSIGN_OR_RETURN(Json r, ApiClient(c).rollback(a, body));
      std::printf("Rolled back %s of %s to %s (from %s)\n", al.c_str(), a.c_str(), splitLine(r).c_str(),
                  splitLine(r, "previous_split").c_str());
      return Status::Ok();
    });
  });
}

}  // namespace nubo::cli
