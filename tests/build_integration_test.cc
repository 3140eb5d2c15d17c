// Builds end to end: the real `nubo serve`, its sandboxed builders, the CLI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <thread>

#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class BuildTest : public SharedServerTest {
 protected:
  // Deploys `files` as app `name` with the CLI; the whole run.
  ProcResult deployDir(const std::string& name, const std::map<std::string, std::string>& files,
                       std::vector<std::string> extra = {}) {
    std::string dir = tmp_->sub("apps/" + name + "-" + std::to_string(n_++));
    for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
    std::vector<std::string> args = {"deploy", dir, "--app", name};
    args.insert(args.end(), extra.begin(), extra.end());
    return server_->nubo(args);
  }
  Json deployment(const std::string& id) {
    auto r = server_->control("GET", "/v1/deployments/" + id);
    auto j = parseJson(r.body, "deployment");
    return j.ok() ? *j : Json::object();
  }
  int n_ = 0;
};

TEST_F(BuildTest, ABuildCommandsOutputIsServedAndItsLogStreamsToDeploy) {
  auto r = deployDir("built", {{"nubo.json", R"({"runtime": "static", "build": {
      "command": "mkdir -p dist && echo made > dist/index.html && echo step one && echo step two >&2",
      "output": "dist"}})"},
                               {"src.txt", "source"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("step one"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("step two"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(READY)"), std::string::npos) << r.out;
  EXPECT_EQ(server_->get("/built/").body, "made\n");
  EXPECT_EQ(server_->get("/built/src.txt").status, 404) << "only the output is served";

  auto list = parseJson(server_->nubo({"deployments", "ls", "built", "--json"}).out, "ls");
  ASSERT_TRUE(list.ok());
  std::string id = (*list)[0]["id"];
  EXPECT_EQ(deployment(id)["state"], "READY");
  auto logs = server_->nubo({"build-logs", id});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_NE(logs.out.find("step one"), std::string::npos) << logs.out;
  EXPECT_NE(logs.out.find("build finished"), std::string::npos) << logs.out;

  // The event stream: every line from the start, or only what follows a cursor.
  cli::HttpClient c(server_->controlUrl(), server_->token());
  std::string all, rest;
  ASSERT_TRUE(c.stream("/v1/deployments/" + id + "/events", [&](std::string_view b) { all.append(b); return true; }).ok());
  EXPECT_NE(all.find("event: log"), std::string::npos) << all;
  EXPECT_NE(all.find("step one"), std::string::npos) << all;
  EXPECT_NE(all.find("event: state\ndata: {\"state\":\"READY\"}"), std::string::npos) << all;
  auto page = parseJson(server_->control("GET", "/v1/deployments/" + id + "/build-log").body, "page");
  ASSERT_TRUE(page.ok());
  std::string cursor = std::to_string((*page)["cursor"].get<uint64_t>());
  ASSERT_TRUE(c.stream("/v1/deployments/" + id + "/events?after=" + cursor, [&](std::string_view b) {
                 rest.append(b);
                 return true;
               }).ok());
  EXPECT_EQ(rest.find("event: log"), std::string::npos) << rest;
  EXPECT_NE(rest.find("READY"), std::string::npos) << rest;
  EXPECT_FALSE(c.stream("/v1/deployments/" + id + "/events?after=x", [](std::string_view) { return true; }).ok());

  // Removing the app removes its build logs too.
  std::string log_file = server_->dataDir() + "/build-logs/" + id + ".log";
  EXPECT_TRUE(std::filesystem::exists(log_file));
  ASSERT_EQ(server_->nubo({"apps", "rm", "built"}).exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(log_file));
}

TEST_F(BuildTest, AFailedBuildShowsItsErrorExitsNonZeroAndMovesNoAlias) {
  ASSERT_EQ(deployDir("fails", {{"index.html", "v1"}}).exit_code, 0);
  auto r = deployDir("fails", {{"nubo.json", R"({"runtime": "static", "build": {
      "command": "echo 'error: missing semicolon at line 3' >&2; exit 2"}})"},
                               {"index.html", "v2"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("missing semicolon at line 3"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("build"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("failed"), std::string::npos) << r.err;
  EXPECT_EQ(server_->get("/fails/").body, "v1");
  auto list = parseJson(server_->nubo({"deployments", "ls", "fails", "--json"}).out, "ls");
  ASSERT_TRUE(list.ok());
  Json newest = deployment((*list)[0]["id"]);
  EXPECT_EQ(newest["state"], "FAILED");
  EXPECT_NE(newest["error"].get<std::string>().find("exit status"), std::string::npos) << newest.dump();
}

TEST_F(BuildTest, ABuildSeesNeitherSecretsNorTheDeploymentsEnv) {
  auto r = deployDir("envcheck", {{"nubo.json", R"json({"runtime": "static", "env": {"APP_SECRET": "hunter2"},
      "build": {"command": "mkdir -p out && env > out/env.txt && (cat /etc/shadow > out/shadow 2>/dev/null || true)",
                "output": "out"}})json"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string env = server_->get("/envcheck/env.txt").body;
  EXPECT_NE(env.find("NUBO_MANIFEST"), std::string::npos) << env;
  EXPECT_EQ(env.find("APP_SECRET=hunter2"), std::string::npos) << env;
  EXPECT_EQ(env.find("NUBO_TOKEN"), std::string::npos) << env;
  EXPECT_EQ(env.find(server_->token()), std::string::npos);
  EXPECT_EQ(server_->get("/envcheck/shadow").body.find("root:"), std::string::npos);
}

// A node project with one dependency (a local folder, "greet") and its
// lock file, answering greet(`word`).
std::map<std::string, std::string> greetProject(const TempDir& tmp, const std::string& word) {
  std::map<std::string, std::string> files = {
      {"nubo.json", R"({"runtime": "node", "build": {"builder": "node"}})"},
      {"package.json", R"({"name": "app", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      {"vendor/greet/index.js", "module.exports = (n) => `hello ${n}`;\n"},
      {"index.js", "const greet = require('greet');\nmodule.exports = (req, res) => res.end(greet('" + word + "'));\n"},
  };
  files["package-lock.json"] = lockFileFor(tmp, files);
  return files;
}

TEST_F(BuildTest, TheNodeBuilderInstallsDependencies) {
  std::map<std::string, std::string> files = greetProject(*tmp_, "built");

  auto first = deployDir("nodebuild", files);
  ASSERT_EQ(first.exit_code, 0) << first.out << first.err;
  EXPECT_NE(first.out.find("npm ci"), std::string::npos) << first.out;
  EXPECT_EQ(server_->get("/nodebuild/").body, "hello built");

  files["index.js"] = "const greet = require('greet');\nmodule.exports = (req, res) => res.end(greet('again'));\n";
  auto second = deployDir("nodebuild", files);
  ASSERT_EQ(second.exit_code, 0) << second.out << second.err;
  EXPECT_NE(second.out.find("its node_modules is reused"), std::string::npos) << second.out;
  EXPECT_EQ(server_->get("/nodebuild/").body, "hello again");

  // package.json changed: installed again (from npm's cache where it can).
  files["package.json"] = R"({"name": "app", "version": "1.0.1", "dependencies": {"greet": "file:vendor/greet"}})";
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto third = deployDir("nodebuild", files);
  ASSERT_EQ(third.exit_code, 0) << third.out << third.err;
  EXPECT_NE(third.out.find("npm ci --omit=dev --prefer-offline"), std::string::npos) << third.out;
  EXPECT_EQ(server_->get("/nodebuild/").body, "hello again");
}

// The cache is the app's, written by every build of it (a preview's
// build.command as well): what one build leaves there must not become
// another build's code. Two entries once were trusted as found: the
// installed node_modules named after the lock file's hash, and the
// compiled SDK named after the SDK's.
TEST_F(BuildTest, ABuildCannotPlantCacheEntriesLaterBuildsTrust) {
  std::map<std::string, std::string> node = greetProject(*tmp_, "honest");
  // The planting build: same lock file, a command writing the entries.
  std::map<std::string, std::string> planter = node;
  planter["nubo.json"] = R"({"runtime": "static", "build": {"output": "site", "command":
      "key=$(sha256sum package-lock.json | cut -c1-64) && mkdir -p $NUBO_CACHE/node_modules-$key/greet && printf '{\"name\":\"greet\",\"main\":\"index.js\"}' > $NUBO_CACHE/node_modules-$key/greet/package.json && echo 'module.exports = () => \"planted\"' > $NUBO_CACHE/node_modules-$key/greet/index.js && sdk=$(cat $NUBO_SDK/cpp/nubo.h $NUBO_SDK/cpp/nubo.cc | sha256sum | cut -c1-16) && echo 'int main() { return 3; }' > p.cc && g++ -c p.cc -o $NUBO_CACHE/nubo-sdk-$sdk.o && mkdir -p site && echo planted > site/index.html"}})";
  auto planted = deployDir("shared", planter);
  ASSERT_EQ(planted.exit_code, 0) << planted.out << planted.err;
  ASSERT_EQ(server_->get("/shared/").body, "planted\n");
  auto honest = deployDir("shared", node);
  ASSERT_EQ(honest.exit_code, 0) << honest.out << honest.err;
  EXPECT_EQ(server_->get("/shared/").body, "hello honest");
  auto native = deployDir("shared", {{"nubo.json", R"({"runtime": "native"})"},
                                     {"main.cc", R"(#include "nubo.h"
nubo::Response handle(const nubo::Request&) { return nubo::Response::text("native honest"); })"}});
  ASSERT_EQ(native.exit_code, 0) << native.out << native.err;
  EXPECT_EQ(server_->get("/shared/").body, "native honest");
}

TEST_F(BuildTest, TypeScriptIsBundledWithItsDependenciesAndStackTracesNameTheTsLine) {
  std::map<std::string, std::string> files = {
      {"package.json", R"({"name": "tsapp", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      {"vendor/greet/index.js", "module.exports = (n) => `hello ${n}`;\n"},
      {"index.ts", R"(import greet from 'greet';
interface Out { msg: string }
export default {
  async fetch(request: Request): Promise<Response> {
    if (new URL(request.url).searchParams.has('boom')) {
      throw new Error('typed failure');
    }
    const out: Out = { msg: greet('ts') };
    return Response.json(out);
  },
};
)"}};
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto r = deployDir("tsapp", files);  // no nubo.json: TypeScript and a package.json are enough
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("esbuild index.ts"), std::string::npos) << r.out;
  EXPECT_EQ(server_->get("/tsapp/").body, R"({"msg":"hello ts"})");
  EXPECT_EQ(server_->get("/tsapp/?boom").status, 500);
  bool traced = waitFor([&] { return server_->nubo({"logs", "tsapp"}).out.find("index.ts:6:") != std::string::npos; });
  EXPECT_TRUE(traced) << server_->nubo({"logs", "tsapp"}).out;
}

TEST_F(BuildTest, AnEsModuleIsBundledWithItsDependenciesAndStackTracesNameItsLine) {
  std::map<std::string, std::string> files = {
      {"package.json", R"({"name": "esm", "version": "1.0.0", "dependencies": {"greet": "file:vendor/greet"}})"},
      {"vendor/greet/package.json", R"({"name": "greet", "version": "1.0.0", "main": "index.js"})"},
      // CommonJS that requires a built-in module, inside an ES module bundle.
      {"vendor/greet/index.js", "const path = require('path');\n"
                                "module.exports = (n) => `hello ${n} from ${path.basename('/x/y')}`;\n"},
      {"index.mjs", R"(import greet from 'greet';
const started = await Promise.resolve('top-level await');
export default {
  async fetch(request) {
    if (new URL(request.url).searchParams.has('boom')) {
      throw new Error('module failure');
    }
    return Response.json({ msg: greet('esm'), started });
  },
};
)"}};
  files["package-lock.json"] = lockFileFor(*tmp_, files);
  auto r = deployDir("esmapp", files);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("esbuild index.mjs"), std::string::npos) << r.out;
  EXPECT_EQ(server_->get("/esmapp/").body, R"({"msg":"hello esm from y","started":"top-level await"})");
  EXPECT_EQ(server_->get("/esmapp/?boom").status, 500);
  bool traced = waitFor([&] { return server_->nubo({"logs", "esmapp"}).out.find("index.mjs:6:") != std::string::npos; });
  EXPECT_TRUE(traced) << server_->nubo({"logs", "esmapp"}).out;
}

TEST_F(BuildTest, RedeployBuildsTheSameSourceAsANewDeployment) {
  ASSERT_EQ(deployDir("again", {{"nubo.json", R"({"runtime": "static", "build": {
      "command": "mkdir -p o && date +%s%N > o/index.html", "output": "o"}})"}}).exit_code, 0);
  auto list = parseJson(server_->nubo({"deployments", "ls", "again", "--json"}).out, "ls");
  std::string first = (*list)[0]["id"];
  std::string before = server_->get("/again/").body;
  auto r = server_->nubo({"redeploy", first});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  list = parseJson(server_->nubo({"deployments", "ls", "again", "--json"}).out, "ls");
  ASSERT_EQ(list->size(), 2u);
  std::string second = (*list)[0]["id"];
  EXPECT_NE(second, first);
  EXPECT_EQ(deployment(second)["root"], deployment(first)["root"]);
  EXPECT_NE(server_->get("/again/").body, before) << "production moved to the new build";
}

TEST_F(BuildTest, EveryInitTemplateDeploysAndAnswers) {
  for (std::string t : {"node", "ts", "native", "exec", "static"}) {
    std::string dir = tmp_->sub("init-" + t);
    auto made = server_->nubo({"init", "--template", t, dir});
    ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
    auto r = server_->nubo({"deploy", dir});
    ASSERT_EQ(r.exit_code, 0) << t << ": " << r.out << r.err;
    auto got = server_->get("/init-" + t + "/");
    EXPECT_EQ(got.status, 200) << t << ": " << got.body;
    if (t == "static") {
      EXPECT_NE(got.body.find("Hello from init-static"), std::string::npos) << got.body;
    } else {
      EXPECT_EQ(got.body, R"({"hello":"world","path":"/"})") << t;
    }
  }
  auto bad = server_->nubo({"init", "--template", "cobol", tmp_->sub("init-x")});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("there are: node, ts, native, exec, static"), std::string::npos) << bad.err;
  auto taken = server_->nubo({"init", tmp_->sub("init-node")});
  EXPECT_NE(taken.exit_code, 0);
  EXPECT_NE(taken.err.find("not empty"), std::string::npos) << taken.err;
}

TEST_F(BuildTest, ANativeFunctionIsCompiledAndEchoesJson) {
  auto r = deployDir("native", {{"nubo.json", R"({"runtime": "native", "env": {"GREETING": "hi"}})"},
                                {"main.cc", R"(#include <cstdlib>
#include <stdexcept>
#include "nubo.h"
nubo::Response handle(const nubo::Request& req) {
  if (req.query("fail") == "1") throw std::runtime_error("native failure");
  const char* g = std::getenv("GREETING");
  return nubo::Response::json("{\"method\":\"" + req.method + "\",\"path\":\"" + nubo::jsonEscape(req.path) +
                              "\",\"body\":\"" + nubo::jsonEscape(req.body) + "\",\"greeting\":\"" +
                              (g ? g : "") + "\",\"id\":\"" + std::string(req.header("X-Nubo-Request-Id")) + "\"}");
}
)"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("g++"), std::string::npos) << r.out;
  cli::HttpClient c(server_->dataUrl(), "");
  auto post = c.send("POST", "/native/echo?x=1", R"({"a": [1, 2]})");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 200) << post->body;
  auto j = parseJson(post->body, "native");
  ASSERT_TRUE(j.ok()) << post->body;
  EXPECT_EQ((*j)["method"], "POST");
  EXPECT_EQ((*j)["path"], "/echo?x=1");
  EXPECT_EQ((*j)["body"], R"({"a": [1, 2]})");
  EXPECT_EQ((*j)["greeting"], "hi");
  EXPECT_EQ((*j)["id"], post->header("x-nubo-request-id"));
  EXPECT_EQ(post->header("content-type"), "application/json");
  auto fail = server_->get("/native/?fail=1");
  EXPECT_EQ(fail.status, 500);
  EXPECT_NE(fail.body.find("native failure"), std::string::npos) << fail.body;
}

TEST_F(BuildTest, ANativeFunctionCanStreamItsResponse) {
  auto r = deployDir("nstream", {{"nubo.json", R"({"runtime": "native"})"},
                                 {"stream.cc", R"(#include "nubo.h"
void handle(const nubo::Request&, nubo::ResponseWriter& out) {
  out.start(200, {{"content-type", "text/plain"}});
  for (int i = 0; i < 3; ++i) out.write("part " + std::to_string(i) + "\n");
  out.end();
}
)"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto got = server_->get("/nstream/");
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.body, "part 0\npart 1\npart 2\n");
}

// A handler that blocks (here: until /release) holds up no other request:
// the SDK's reading and the rest of the work go on on other threads.
TEST_F(BuildTest, ABlockedNativeHandlerHoldsUpNoOtherRequest) {
  // One instance, so that every request meets the blocked one.
  auto r = deployDir("nblock", {{"nubo.json", R"({"runtime": "native", "limits": {"max_instances": 1}})"},
                                {"main.cc", R"(#include <chrono>
#include <condition_variable>
#include <mutex>
#include "nubo.h"
std::mutex mu;
std::condition_variable cv;
int blocked = 0;
bool released = false;
nubo::Response handle(const nubo::Request& req) {
  if (req.pathname() == "/big") return nubo::Response::text(std::string(3 << 20, 'b'));  // over the window
  std::unique_lock lock(mu);
  if (req.pathname() == "/block") {
    ++blocked;
    bool ok = cv.wait_for(lock, std::chrono::seconds(60), [] { return released; });
    --blocked;
    return nubo::Response::text(ok ? "released" : "timed out");
  }
  if (req.pathname() == "/release") {
    released = true;
    cv.notify_all();
  }
  return nubo::Response::text("blocked " + std::to_string(blocked));
}
)"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string slow_body;
  std::thread slow([&] {
    cli::HttpClient c(server_->dataUrl(), "");
    auto got = c.send("GET", "/nblock/block", "");
    slow_body = got.ok() ? got->body : got.status().message();
  });
  bool seen = waitFor([&] { return server_->get("/nblock/").body == "blocked 1"; }, std::chrono::seconds(20));
  EXPECT_TRUE(seen) << "the blocked handler held up the others";
  for (int i = 0; i < 50 && seen; ++i) {
    auto got = server_->get("/nblock/?i=" + std::to_string(i));
    EXPECT_EQ(got.status, 200);
    EXPECT_EQ(got.body, "blocked 1");
    if (got.body != "blocked 1") break;
  }
  auto big = server_->get("/nblock/big");
  EXPECT_EQ(big.status, 200);
  EXPECT_EQ(big.body, std::string(3 << 20, 'b'));
  EXPECT_EQ(server_->get("/nblock/release").status, 200);
  slow.join();
  EXPECT_EQ(slow_body, "released");
}

// Responses larger than the stream window: whole, and streamed in pieces
// (the handler waits for the gateway's WINDOW frames).
TEST_F(BuildTest, LargeNativeResponsesArriveWhole) {
  auto r = deployDir("nlarge", {{"nubo.json", R"({"runtime": "native"})"},
                                {"main.cc", R"(#include "nubo.h"
void handle(const nubo::Request& req, nubo::ResponseWriter& out) {
  size_t pieces = static_cast<size_t>(std::stoul(req.query("n")));
  out.start(200, {{"content-type", "application/octet-stream"}});
  std::string piece(64 * 1024, 'x');
  for (size_t i = 0; i < pieces; ++i) {
    piece[0] = static_cast<char>('a' + i % 26);
    out.write(piece);
  }
  out.end();
}
)"}});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (int n : {1, 64}) {  // 64 KiB; 4 MiB, four times the window
    auto got = server_->get("/nlarge/?n=" + std::to_string(n));
    ASSERT_EQ(got.status, 200);
    ASSERT_EQ(got.body.size(), static_cast<size_t>(n) * 64 * 1024);
    for (int i = 0; i < n; ++i) ASSERT_EQ(got.body[static_cast<size_t>(i) * 64 * 1024], 'a' + i % 26) << i;
  }
}

TEST_F(BuildTest, ANativeBuildThatDoesNotCompileFails) {
  auto r = deployDir("nbroken", {{"nubo.json", R"({"runtime": "native"})"},
                                 {"main.cc", "#include \"nubo.h\"\nnubo::Response handle(const nubo::Request&) { return 42; }\n"}});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("error"), std::string::npos) << r.out;
}

// A builder an operator adds: its `detect` claims folders no built-in rule
// does, and its `build` makes the deployment.
TEST(OperatorBuilderTest, ADetectedBuilderBuildsAndOthersDeployAsUploaded) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string b = server.dataDir() + "/builders/shout";
  writeFile(b + "/detect", "#!/bin/sh\n[ -f \"$1/words.txt\" ] && echo words.txt\n");
  writeFile(b + "/build", "#!/bin/sh\nset -e\ntr a-z A-Z < \"$1/words.txt\" > \"$2/index.html\"\n");
  ASSERT_EQ(::chmod((b + "/detect").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((b + "/build").c_str(), 0755), 0);
  std::string words = tmp.sub("words");
  writeFile(words + "/words.txt", "quiet please\n");
  auto r = server.nubo({"deploy", words, "--app", "words"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("detected the shout builder"), std::string::npos) << r.out;
  EXPECT_EQ(server.get("/words/").body, "QUIET PLEASE\n");
  std::string site = tmp.sub("site");
  writeFile(site + "/index.html", "as is");
  auto plain = server.nubo({"deploy", site, "--app", "plain"});
  ASSERT_EQ(plain.exit_code, 0) << plain.out << plain.err;
  EXPECT_NE(plain.out.find("no builder applies"), std::string::npos) << plain.out;
  EXPECT_EQ(server.get("/plain/").body, "as is");
}

// Builds survive the server being killed: a build cut short starts over
// when the server is back.
TEST(BuildRestartTest, ABuildInterruptedByAKillStartsOverAfterARestart) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string dir = tmp.sub("app");
  writeFile(dir + "/nubo.json", R"({"runtime": "static", "build": {
      "command": "mkdir -p o && sleep 1 && echo rebuilt > o/index.html", "output": "o"}})");
  // Start the deploy, and kill the server while the build runs.
  std::thread deployer([&] { server.nubo({"deploy", dir, "--app", "slowbuild"}); });
  std::string id;
  bool building = waitFor([&] {
    auto r = server.control("GET", "/v1/apps/slowbuild/deployments");
    auto j = parseJson(r.body, "list");
    if (!j.ok() || !j->contains("deployments") || (*j)["deployments"].empty()) return false;
    id = (*j)["deployments"][0]["id"];
    return (*j)["deployments"][0]["state"] == "BUILDING";
  });
  ASSERT_TRUE(building);
  server.stop(SIGKILL);
  deployer.join();
  server.start();
  bool ready = waitFor([&] {
    auto r = server.control("GET", "/v1/deployments/" + id);
    return r.body.find("\"READY\"") != std::string::npos;
  }, std::chrono::seconds(20));
  EXPECT_TRUE(ready);
  // (The router takes the change a moment after the store commits it.)
  EXPECT_TRUE(waitFor([&] { return server.get("/slowbuild/").body == "rebuilt\n"; }))
      << server.get("/slowbuild/").body;
  auto logs = server.nubo({"build-logs", id});
  EXPECT_NE(logs.out.find("starts over"), std::string::npos) << logs.out;
}

}  // namespace
}  // namespace nubo::testing_util
