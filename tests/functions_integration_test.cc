// Functions end to end: the real `nubo serve` running node instances.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "common/sha256.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class FunctionsTest : public SharedServerTest {
 protected:
  Json instances(const std::string& app) {
    ProcResult r = server_->nubo({"ps", app, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = parseJson(r.out, "ps");
    return j.ok() ? *j : Json::array();
  }
};

const char* kFetchEsm = R"(export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    return Response.json({ style: 'fetch-esm', method: request.method, path: url.pathname,
                           q: url.searchParams.get('q'), greeting: env.GREETING });
  }
})";

TEST_F(FunctionsTest, WebStyleHandlersInEsmAndCommonJs) {
  Json d = deployApp("fetch-js", {{"index.js", kFetchEsm}, {"nubo.json", R"({"env": {"GREETING": "hi"}})"}});
  EXPECT_EQ(d["state"], "READY");
  auto r = server_->get("/fetch-js/some/path?q=42");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  auto j = parseJson(r.body, "body");
  ASSERT_TRUE(j.ok()) << r.body;
  EXPECT_EQ((*j)["style"], "fetch-esm");
  EXPECT_EQ((*j)["path"], "/some/path");
  EXPECT_EQ((*j)["q"], "42");
  EXPECT_EQ((*j)["greeting"], "hi");
  EXPECT_FALSE(r.header("x-nubo-request-id").empty());
  EXPECT_EQ(r.header("x-nubo-deployment"), d["deployment"]);

  deployApp("fetch-mjs", {{"index.mjs", kFetchEsm}});
  EXPECT_NE(server_->get("/fetch-mjs/").body.find("fetch-esm"), std::string::npos);

  deployApp("fetch-cjs", {{"index.cjs", R"(module.exports = {
    async fetch(request) { return new Response('cjs ' + request.method, { status: 201, headers: { 'x-a': 'b' } }); }
  };)"}});
  r = server_->get("/fetch-cjs/", {}, "PUT");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.body, "cjs PUT");
  EXPECT_EQ(r.header("x-a"), "b");
}

// The runtime's Request and Response (fast paths in runtimes/node/fast_*.js)
// must behave as the standard ones do.
TEST_F(FunctionsTest, RequestAndResponseBehaveAsTheStandardSays) {
  deployApp("web-api", {{"index.js", R"(export default { async fetch(request) {
      const out = {};
      const j = Response.json({ a: 1 }, { status: 201, headers: { 'x-k': 'v' } });
      out.json = [j instanceof Response, j.status, j.headers.get('content-type'), j.headers.get('x-k'), j.bodyUsed];
      out.jsonClone = await j.clone().json();
      out.jsonText = await j.text();
      out.usedAfter = j.bodyUsed;
      try { await j.text(); out.secondRead = 'allowed'; } catch (e) { out.secondRead = e instanceof TypeError; }
      const t = new Response('h\u00e9llo');
      out.text = [t.headers.get('content-type'), t.body instanceof ReadableStream, t.bodyUsed];
      const chunks = [];
      for await (const c of t.body) chunks.push(...c);
      out.streamed = [new TextDecoder().decode(new Uint8Array(chunks)), t.bodyUsed];
      const bytes = new Response(new Uint8Array([1, 2, 3]));
      out.bytes = [bytes.headers.get('content-type'), [...new Uint8Array(await bytes.arrayBuffer())]];
      out.blob = await (await new Response('blob', { headers: { 'content-type': 'text/x' } }).blob()).type;
      out.form = Object.fromEntries(await new Response('a=1&b=2', {
        headers: { 'content-type': 'application/x-www-form-urlencoded' } }).formData());
      try { new Response('x', { status: 204 }); out.nullBody = 'allowed'; } catch (e) { out.nullBody = e instanceof TypeError; }
      out.redirect = [Response.redirect('http://example.test/', 302) instanceof Response, Response.error().type];
      out.noBody = [new Response(null, { status: 204 }).body, new Response().status];
      try { Response.json(undefined); out.badJson = 'allowed'; } catch (e) { out.badJson = e instanceof TypeError; }
      out.request = [request instanceof Request, request.signal instanceof AbortSignal, request.signal.aborted,
                     request.clone().signal instanceof AbortSignal, new Request(request).method,
                     request.headers.get('x-test')];
      return Response.json(out);
    } })"}});
  auto r = server_->get("/web-api/", {"x-test: yes"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = parseJson(r.body, "report");
  ASSERT_TRUE(j.ok()) << r.body;
  EXPECT_EQ((*j)["json"], Json::parse(R"([true, 201, "application/json", "v", false])"));
  EXPECT_EQ((*j)["jsonClone"], Json::parse(R"({"a": 1})"));
  EXPECT_EQ((*j)["jsonText"], R"({"a":1})");
  EXPECT_EQ((*j)["usedAfter"], true);
  EXPECT_EQ((*j)["secondRead"], true);
  EXPECT_EQ((*j)["text"], Json::parse(R"(["text/plain;charset=UTF-8", true, false])"));
  EXPECT_EQ((*j)["streamed"], Json::parse("[\"h\u00e9llo\", true]"));
  EXPECT_EQ((*j)["bytes"], Json::parse(R"([null, [1, 2, 3]])"));
  EXPECT_EQ((*j)["blob"], "text/x");
  EXPECT_EQ((*j)["form"], Json::parse(R"({"a": "1", "b": "2"})"));
  EXPECT_EQ((*j)["nullBody"], true);
  EXPECT_EQ((*j)["redirect"], Json::parse(R"([true, "error"])"));
  EXPECT_EQ((*j)["noBody"], Json::parse(R"([null, 200])"));
  EXPECT_EQ((*j)["badJson"], true);
  EXPECT_EQ((*j)["request"], Json::parse(R"([true, true, false, true, "GET", "yes"])"));
}

// The runtime builds Request and Response objects lazily: what a handler
// does to them after creating them must still be what the client sees.
TEST_F(FunctionsTest, ResponsesChangedAfterTheyAreMadeAreSentAsChanged) {
  deployApp("lazy", {{"index.js", R"(
    class Tagged extends Response { get tag() { return 'mine'; } }
    export default { async fetch(request) {
      const u = new URL(request.url);
      const kind = u.searchParams.get('kind');
      if (kind === 'json') {
        const r = Response.json({ m: request.method, p: u.pathname });
        r.headers.set('x-later', '1');
        return r;
      }
      if (kind === 'text') return new Response('made ' + request.method, { status: 202 });
      if (kind === 'sub') {
        const r = new Tagged('sub');
        return new Response(`${r instanceof Tagged} ${r.tag} ${await r.text()}`);
      }
      if (kind === 'headers') {
        await null;
        return Response.json([...request.headers].filter(([k]) => k.startsWith('x-')));
      }
      return new Response(new Uint8Array([104, 105]), { status: 203 });
    } })"}});
  auto json = server_->get("/lazy/x?kind=json");
  EXPECT_EQ(json.status, 200);
  EXPECT_EQ(json.body, R"({"m":"GET","p":"/x"})");
  EXPECT_EQ(json.header("content-type"), "application/json");
  EXPECT_EQ(json.header("x-later"), "1");
  auto text = server_->get("/lazy/?kind=text");
  EXPECT_EQ(text.status, 202);
  EXPECT_EQ(text.body, "made GET");
  EXPECT_EQ(text.header("content-type"), "text/plain;charset=UTF-8");
  auto sub = server_->get("/lazy/?kind=sub");
  EXPECT_EQ(sub.body, "true mine sub");
  auto headers = server_->get("/lazy/?kind=headers", {"X-One: 1", "x-two: 2"});
  std::string host = server_->dataUrl().substr(7);  // "127.0.0.1:PORT"
  EXPECT_EQ(headers.body, R"([["x-forwarded-for","127.0.0.1"],["x-forwarded-host",")" + host +
                              R"("],["x-forwarded-prefix","/lazy"],["x-forwarded-proto","http"],["x-nubo-request-id",")" +
                              headers.header("x-nubo-request-id") + R"("],["x-one","1"],["x-two","2"]])");
  auto bytes = server_->get("/lazy/");
  EXPECT_EQ(bytes.status, 203);
  EXPECT_EQ(bytes.body, "hi");
  EXPECT_EQ(bytes.header("content-type"), "");
}

TEST_F(FunctionsTest, NodeStyleHandlersInCommonJsAndEsm) {
  const char* body = R"((req, res) => {
    let data = '';
    req.on('data', (c) => { data += c; });
    req.on('end', () => {
      res.setHeader('content-type', 'text/plain');
      res.statusCode = 202;
      res.end(`${req.method} ${req.url} ${req.headers['x-test']} [${data}]`);
    });
  })";
  deployApp("node-cjs", {{"index.js", std::string("module.exports = ") + body + ";"}});
  deployApp("node-esm", {{"index.mjs", std::string("export default ") + body + ";"}});
  for (std::string app : {"node-cjs", "node-esm"}) {
    cli::HttpClient c(server_->dataUrl(), "");
    auto r = c.send("POST", "/" + app + "/x/y?z=1", "payload", {"X-Test: yes"});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 202) << app << ": " << r->body;
    EXPECT_EQ(r->body, "POST /x/y?z=1 yes [payload]") << app;
    EXPECT_EQ(r->header("content-type"), "text/plain");
  }
  // writeHead + several writes + chunked encoding asked for explicitly.
  deployApp("node-chunks", {{"index.js", R"(module.exports = (req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked', 'set-cookie': ['a=1', 'b=2'] });
    res.write('one,');
    res.write('two,');
    res.end('three');
  };)"}});
  auto r = server_->get("/node-chunks/");
  EXPECT_EQ(r.body, "one,two,three");
}

TEST_F(FunctionsTest, TenMegabyteJsonEcho) {
  deployApp("echo", {{"index.js", R"(export default {
    async fetch(request) {
      const data = await request.json();
      return Response.json(data);
    }
  })"}});
  std::string big = "{\"items\":[";
  for (int i = 0; i < 240000; ++i) big += (i ? "," : "") + std::string("{\"n\":") + std::to_string(i) + ",\"s\":\"abcdefghijklmnopqrstuvwxyz\"}";
  big += "]}";
  ASSERT_GT(big.size(), 10u << 20);
  cli::HttpClient c(server_->dataUrl(), "");
  auto r = c.send("POST", "/echo/", big, {"Content-Type: application/json"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body.size(), big.size());
  EXPECT_TRUE(r->body == big);
}

TEST_F(FunctionsTest, ProcessExitIs502AndTheNextRequestSucceeds) {
  deployApp("exiter", {{"index.js", R"(const instance = Math.random().toString(36).slice(2);
  export default {
    fetch(request) {
      if (new URL(request.url).pathname === '/exit') process.exit(3);
      return new Response('alive ' + instance);
    }
  })"}});
  auto ok = server_->get("/exiter/");
  EXPECT_EQ(ok.status, 200);
  auto r = server_->get("/exiter/exit");
  EXPECT_EQ(r.status, 502);
  EXPECT_NE(r.body.find("exited with status 3"), std::string::npos) << r.body;
  auto again = server_->get("/exiter/");
  EXPECT_EQ(again.status, 200);
  EXPECT_NE(again.body, ok.body);  // a new instance
}

TEST_F(FunctionsTest, InfiniteLoopIs504WhileOtherAppsKeepAnswering) {
  deployApp("spinner", {{"index.js", R"(export default {
    fetch(request) {
      if (new URL(request.url).pathname === '/spin') { while (true) {} }
      return new Response('ok');
    }
  })"}, {"nubo.json", R"({"limits": {"timeout_ms": 1000}})"}});
  deployApp("bystander", {{"index.js", "export default { fetch() { return new Response('still here'); } }"}});
  EXPECT_EQ(server_->get("/bystander/").body, "still here");

  std::atomic<bool> done{false};
  std::atomic<int> bystander_ok{0}, bystander_bad{0};
  std::thread other([&] {
    cli::HttpClient c(server_->dataUrl(), "");
    while (!done) {
      auto r = c.send("GET", "/bystander/");
      (r.ok() && r->body == "still here" ? bystander_ok : bystander_bad)++;
    }
  });
  auto t0 = std::chrono::steady_clock::now();
  auto r = server_->get("/spinner/spin");
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  done = true;
  other.join();
  EXPECT_EQ(r.status, 504) << r.body;
  EXPECT_GE(secs, 0.9);
  EXPECT_LT(secs, 2.0);
  EXPECT_GT(bystander_ok.load(), 0);
  EXPECT_EQ(bystander_bad.load(), 0);
  // The runaway instance was killed; a fresh one answers.
  EXPECT_EQ(server_->get("/spinner/").body, "ok");
}

TEST_F(FunctionsTest, EnvHoldsOnlyTheDeploymentsVariablesAndTheRuntimeMinimum) {
  deployApp("envy", {{"index.js", R"(export default {
    fetch(request, env) {
      return Response.json({ process: Object.keys(process.env).sort(), env: Object.keys(env).sort() });
    }
  })"}, {"nubo.json", R"({"env": {"API_URL": "https://example.test", "MODE": "demo"}})"}});
  auto j = parseJson(server_->get("/envy/").body, "env");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ((*j)["env"], Json::array({"API_URL", "MODE"}));
  EXPECT_EQ((*j)["process"], Json::array({"API_URL", "HOME", "MODE", "NODE_ENV", "PATH", "TZ"}));
}

TEST_F(FunctionsTest, HandlerErrorsAre500AndLoadErrorsSaySo) {
  deployApp("thrower", {{"index.js", "export default { fetch() { throw new Error('boom in handler'); } }"}});
  auto r = server_->get("/thrower/");
  EXPECT_EQ(r.status, 500);
  EXPECT_NE(r.body.find("boom in handler"), std::string::npos) << r.body;
  // Code that cannot load never goes live: the deploy says why.
  auto deployBroken = [&](const std::string& name, const std::string& code) {
    std::string dir = tmp_->sub("apps/" + name);
    writeFile(dir + "/index.js", code);
    return server_->nubo({"deploy", dir, "--app", name});
  };
  auto broken = deployBroken("broken", "export default { fetch() { return new Response('x') } ");  // syntax error
  EXPECT_NE(broken.exit_code, 0);
  EXPECT_NE(broken.err.find("the code failed to load: SyntaxError"), std::string::npos) << broken.err;
  EXPECT_EQ(server_->get("/broken/").status, 404);
  auto noexport = deployBroken("noexport", "const x = 1;");
  EXPECT_NE(noexport.exit_code, 0);
  EXPECT_NE(noexport.err.find("must export default"), std::string::npos) << noexport.err;
}

TEST_F(FunctionsTest, FirstRequestAfterDeployIsServedByAStem) {
  // Stems start with the server; wait until one is ready.
  ASSERT_TRUE(waitFor([&] {
    auto r = server_->control("GET", "/v1/instances");
    auto j = parseJson(r.body, "instances");
    return j.ok() && j->value("stems", 0) >= 1;
  }));
  // The deploy's start check specializes a stem, and that instance then
  // serves the first request warm.
  Json d = deployApp("stemmed", {{"index.js", "export default { fetch() { return new Response('hi'); } }"}});
  EXPECT_NE(server_->nubo({"build-logs", d["deployment"]}).out.find("started from a stem in"), std::string::npos);
  auto r = server_->get("/stemmed/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.header("x-nubo-cold-start"), "");
  auto instances = parseJson(server_->control("GET", "/v1/instances?app=stemmed").body, "instances");
  ASSERT_TRUE(instances.ok());
  EXPECT_EQ((*instances)["instances"].size(), 1u) << "the checked instance is the one serving";
}

// A pool left with no instance is forgotten, and the next request makes a
// new one: deployments nobody calls any more cost nothing.
TEST_F(FunctionsTest, AnEmptyPoolIsForgottenAndComesBackOnTheNextRequest) {
  auto pools = [&] {
    auto j = parseJson(server_->control("GET", "/v1/instances").body, "instances");
    return j.ok() ? j->value("pools", 0) : -1;
  };
  auto instances = [&] {
    auto j = parseJson(server_->control("GET", "/v1/instances?app=forgotten").body, "instances");
    return j.ok() ? static_cast<int>((*j)["instances"].size()) : -1;
  };
  deployApp("forgotten", {{"index.js", "module.exports = (req, res) => res.end('back')"},
                          {"nubo.json", R"({"limits": {"idle_ttl_s": 1}})"}});
  EXPECT_EQ(server_->get("/forgotten/").body, "back");
  int with = pools();
  ASSERT_TRUE(waitFor([&] { return instances() == 0 && pools() < with; })) << pools() << " pools";
  EXPECT_EQ(server_->get("/forgotten/").body, "back");
  EXPECT_EQ(instances(), 1);
}

TEST_F(FunctionsTest, OtherPermissionProfilesGetStemsOnceInUse) {
  const char* code = "export default { fetch() { return new Response('tmp'); } }";
  const char* manifest = R"({"permissions": {"tmp_mb": 24}})";
  // The first deployment of a new profile has no stem yet: its start check
  // spawns an instance, and begins a stem of that profile, which the next
  // deployment with the same permissions is specialized from.
  deployApp("profile-a", {{"index.js", code}, {"nubo.json", manifest}});
  auto r = server_->get("/profile-a/");
  EXPECT_EQ(r.status, 200);
  auto stems = [&] {
    auto j = parseJson(server_->control("GET", "/v1/instances").body, "instances");
    return j.ok() ? j->value("stems", 0) : 0;
  };
  ASSERT_TRUE(waitFor([&] { return stems() >= 3; })) << "stems: " << stems();  // 2 default + 1 of this profile
  Json b = deployApp("profile-b", {{"index.js", code}, {"nubo.json", manifest}});
  EXPECT_NE(server_->nubo({"build-logs", b["deployment"]}).out.find("started from a stem in"), std::string::npos);
  r = server_->get("/profile-b/");
  EXPECT_EQ(r.status, 200);
}

TEST_F(FunctionsTest, ADeploymentWithManyFilesSeesThemAll) {
  // Over the size linked inline: its files are linked on the spawner thread.
  std::map<std::string, std::string> files = {{"index.js", R"(import fs from 'node:fs';
    export default { fetch() {
      const names = fs.readdirSync('/app/data').sort();
      return Response.json({ count: names.length, last: fs.readFileSync('/app/data/' + names.at(-1), 'utf8') });
    } })"}};
  for (int i = 0; i < 300; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "data/f%03d.txt", i);
    files[name] = "file " + std::to_string(i);
  }
  deployApp("many-files", files);
  auto r = server_->get("/many-files/");
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body, R"({"count":300,"last":"file 299"})");
}

TEST_F(FunctionsTest, IdleInstancesScaleToZero) {
  deployApp("idler", {{"index.js", "export default { fetch() { return new Response('hi'); } }"},
                      {"nubo.json", R"({"limits": {"idle_ttl_s": 1}})"}});
  EXPECT_EQ(server_->get("/idler/").status, 200);
  Json ps = instances("idler");
  ASSERT_EQ(ps.size(), 1u) << ps.dump();
  EXPECT_EQ(ps[0]["app"], "idler");
  EXPECT_EQ(ps[0]["state"], "ready");
  EXPECT_GT(ps[0]["rss_bytes"].get<uint64_t>(), 0u);
  for (const char* key : {"deployment", "inflight", "age_s"}) EXPECT_TRUE(ps[0].contains(key)) << key;
  EXPECT_TRUE(waitFor([&] { return instances("idler").empty(); }, std::chrono::seconds(10)));
}

TEST_F(FunctionsTest, WaitUntilKeepsAnIdleInstanceUntilThePromiseSettles) {
  deployApp("waiter", {{"index.js", R"(let release;
    export default { fetch(request, env, ctx) {
      if (new URL(request.url).pathname === '/release') { release(); return new Response('released'); }
      ctx.waitUntil(new Promise((r) => { release = r; }));
      return new Response('started');
    } })"}, {"nubo.json", R"({"limits": {"idle_ttl_s": 1}})"}});
  EXPECT_EQ(server_->get("/waiter/").body, "started");
  // Idle for longer than idle_ttl_s, and still there: the promise is pending.
  EXPECT_TRUE(waitFor([&] {
    Json ps = instances("waiter");
    return ps.size() == 1 && ps[0]["idle_s"].get<double>() >= 1.8;
  })) << instances("waiter").dump();
  EXPECT_EQ(server_->get("/waiter/release").body, "released");
  EXPECT_TRUE(waitFor([&] { return instances("waiter").empty(); }));
}

TEST_F(FunctionsTest, ConcurrentSlowRequestsStayWithinMaxInstances) {
  deployApp("slow", {{"index.js", R"(export default {
    async fetch() { await new Promise((r) => setTimeout(r, 300)); return new Response('done'); }
  })"}, {"nubo.json", R"({"limits": {"concurrency": 32, "max_instances": 4}})"}});
  std::atomic<int> ok{0};
  std::atomic<size_t> max_seen{0};
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      size_t n = instances("slow").size();
      if (n > max_seen) max_seen = n;
    }
  });
  std::vector<std::thread> clients;
  for (int i = 0; i < 200; ++i) {
    clients.emplace_back([&] {
      cli::HttpClient c(server_->dataUrl(), "");
      auto r = c.send("GET", "/slow/");
      if (r.ok() && r->status == 200 && r->body == "done") ok++;
    });
  }
  for (auto& t : clients) t.join();
  done = true;
  watcher.join();
  EXPECT_EQ(ok.load(), 200);
  EXPECT_LE(max_seen.load(), 4u);
  EXPECT_GE(max_seen.load(), 2u);  // one instance alone could not take 200 at 32 each
}

TEST_F(FunctionsTest, LogsKeepEachLineWithItsRequestIdAndCanBeFollowed) {
  Json d = deployApp("chatty", {{"index.js", R"(export default { fetch(request) {
      console.log('serving ' + new URL(request.url).pathname);
      console.error('careful\nsecond line');
      return new Response('ok');
    } })"}});
  auto r = server_->get("/chatty/first");
  std::string rid = r.header("x-nubo-request-id");
  ASSERT_FALSE(rid.empty());
  ProcResult logs = server_->nubo({"logs", "chatty", "--json"});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  bool saw_stdout = false, saw_stderr = false, saw_cold = false;
  std::istringstream lines(logs.out);
  std::string line;
  while (std::getline(lines, line)) {
    auto j = parseJson(line, "log line");
    ASSERT_TRUE(j.ok()) << line;
    EXPECT_EQ((*j)["deployment"], d["deployment"]);
    if ((*j)["text"] == "serving /first" && (*j)["stream"] == "stdout" && (*j)["request_id"] == rid) saw_stdout = true;
    if ((*j)["text"] == "second line" && (*j)["stream"] == "stderr" && (*j)["request_id"] == rid) saw_stderr = true;
    if ((*j)["stream"] == "nubo" && (*j)["text"].get<std::string>().rfind("cold start for the start check: ", 0) == 0) {
      saw_cold = true;  // the deploy's start check began the instance that served
    }
  }
  EXPECT_TRUE(saw_stdout) << logs.out;
  EXPECT_TRUE(saw_stderr) << logs.out;
  EXPECT_TRUE(saw_cold) << logs.out;

  // Following: a line written after the follower started arrives.
  cli::HttpClient c(server_->controlUrl(), server_->token());
  auto page = c.call("GET", "/v1/apps/chatty/logs?limit=1");
  ASSERT_TRUE(page.ok());
  uint64_t cursor = (*page)["cursor"];
  // Whether the line is written before or while the follower waits, it is after the cursor.
  std::thread later([&] { server_->get("/chatty/second"); });
  auto followed = c.call("GET", "/v1/apps/chatty/logs?after=" + std::to_string(cursor) + "&wait=10");
  later.join();
  ASSERT_TRUE(followed.ok());
  ASSERT_FALSE((*followed)["lines"].empty());
  EXPECT_EQ((*followed)["lines"][0]["text"], "serving /second");
  EXPECT_EQ(server_->nubo({"logs", "nosuchapp"}).exit_code, exitCodeFor(Code::kNotFound));
}

// A raw HTTP/1.1 client on loopback, to read a response as it arrives.
class RawClient {
 public:
  explicit RawClient(const std::string& data_url) {
    fd_ = connectLoopback(std::stoi(data_url.substr(data_url.rfind(':') + 1)));
    ok_ = fd_ >= 0;
  }
  ~RawClient() { close(); }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool send(std::string_view s) {
    while (ok_ && !s.empty()) {
      ssize_t n = ::send(fd_, s.data(), s.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      s.remove_prefix(static_cast<size_t>(n));
    }
    return ok_;
  }
  // Reads until `needle` has arrived (or 10 s pass); returns everything read so far.
  std::string readUntil(const std::string& needle) {
    char buf[65536];
    while (got_.find(needle) == std::string::npos) {
      ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) break;
      got_.append(buf, static_cast<size_t>(n));
    }
    return got_;
  }

 private:
  int fd_ = -1;
  bool ok_ = false;
  std::string got_;
};

TEST_F(FunctionsTest, StreamedResponsesArriveAsTheyAreProduced) {
  deployApp("streamer", {{"index.js", R"(let release;
    const gate = new Promise((r) => { release = r; });
    export default { async fetch(request) {
      if (new URL(request.url).pathname === '/release') { release(); return new Response('released'); }
      const enc = new TextEncoder();
      return new Response(new ReadableStream({
        async start(c) { c.enqueue(enc.encode('first part\n')); await gate; c.enqueue(enc.encode('second part\n')); c.close(); }
      }), { headers: { 'content-type': 'text/plain' } });
    } })"}});
  RawClient client(server_->dataUrl());
  ASSERT_TRUE(client.send("GET /streamer/ HTTP/1.1\r\nHost: test\r\n\r\n"));
  std::string sofar = client.readUntil("first part");
  EXPECT_NE(sofar.find("HTTP/1.1 200"), std::string::npos) << sofar;
  EXPECT_NE(sofar.find("first part"), std::string::npos) << sofar;
  EXPECT_EQ(sofar.find("second part"), std::string::npos) << "the second part was produced only after release";
  EXPECT_EQ(server_->get("/streamer/release").body, "released");
  std::string all = client.readUntil("0\r\n\r\n");
  EXPECT_NE(all.find("second part"), std::string::npos) << all;
}

uint64_t peakRssKb(pid_t pid) {
  std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  auto pos = status.find("VmHWM:");
  return pos == std::string::npos ? 0 : std::stoull(status.substr(pos + 6));
}

TEST_F(FunctionsTest, LargeDownloadsStreamWithoutFillingTheGatewaysMemory) {
  deployApp("bigfile", {{"index.js", R"(export default { fetch() {
      const chunk = new Uint8Array(1 << 20).fill(97);
      let left = 128;
      return new Response(new ReadableStream({
        pull(c) { if (left-- > 0) c.enqueue(chunk); else c.close(); }
      }));
    } })"}});
  EXPECT_EQ(server_->get("/_nubo/healthz").status, 200);
  uint64_t before = peakRssKb(server_->pid());
  auto r = server_->get("/bigfile/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 128u << 20);
  uint64_t after = peakRssKb(server_->pid());
  EXPECT_LT(after - before, 48u * 1024) << "the gateway's peak memory grew by " << (after - before) / 1024 << " MB";
}

TEST_F(FunctionsTest, AClientThatGoesAwayCancelsTheStream) {
  deployApp("endless", {{"index.js", R"(let cancelled = false;
    export default { fetch(request) {
      if (new URL(request.url).pathname === '/status') return new Response(cancelled ? 'cancelled' : 'running');
      const chunk = new Uint8Array(64 << 10).fill(98);
      return new Response(new ReadableStream({
        pull(c) { c.enqueue(chunk); },
        cancel() { cancelled = true; },
      }));
    } })"}});
  {
    RawClient client(server_->dataUrl());
    ASSERT_TRUE(client.send("GET /endless/ HTTP/1.1\r\nHost: test\r\n\r\n"));
    client.readUntil("bbbb");
  }  // disconnects mid-stream
  EXPECT_TRUE(waitFor([&] { return server_->get("/endless/status").body == "cancelled"; }))
      << "the function's stream was never cancelled";
}

TEST_F(FunctionsTest, AClientThatGoesAwayAbortsRequestSignal) {
  deployApp("abortable", {{"index.js", R"(const seen = { early: 'pending', late: 'pending' };
    export default { async fetch(request) {
      const path = new URL(request.url).pathname;
      if (path === '/status') return Response.json(seen);
      if (path === '/early') {  // listens before the client goes
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
        seen.early = 'aborted';
      } else {  // looks only after the client has gone
        await new Promise((resolve) => setTimeout(resolve, 300));
        seen.late = request.signal.aborted ? 'aborted' : 'not aborted';
      }
      return new Response('done');
    } })"}});
  for (std::string path : {"/abortable/early", "/abortable/late"}) {
    RawClient client(server_->dataUrl());
    ASSERT_TRUE(client.send("GET " + path + " HTTP/1.1\r\nHost: test\r\n\r\n"));
    // Gone once the function has the request (its instance counts it in flight).
    EXPECT_TRUE(waitFor([&] {
      Json ps = instances("abortable");
      for (const auto& i : ps) if (i["inflight"].get<int>() > 0) return true;
      return false;
    }));
  }
  EXPECT_TRUE(waitFor([&] {
    return server_->get("/abortable/status").body == R"({"early":"aborted","late":"aborted"})";
  })) << server_->get("/abortable/status").body;
}

// Counts and hashes what the function receives; `mode` picks the handler style.
const char* kUploadHasher = R"(import { createHash } from 'node:crypto';
let aborted = 0;
export default async function (req, res) {
  if (req.url === '/aborted') return res.end(String(aborted));
  const h = createHash('sha256');
  let n = 0;
  req.on('data', (c) => { h.update(c); n += c.length; });
  req.on('aborted', () => { aborted++; });
  req.on('error', () => {});
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ bytes: n, sha256: h.digest('hex'), length: req.headers['content-length'] ?? null,
                             chunked: req.headers['transfer-encoding'] ?? null }));
  });
})";

// 1 MiB of a pattern that differs per MiB, so a lost or repeated piece changes the hash.
std::string uploadPiece(int i) {
  std::string piece(1 << 20, 'x');
  for (size_t j = 0; j < piece.size(); j += 4096) piece[j] = static_cast<char>('a' + (i + static_cast<int>(j)) % 26);
  return piece;
}

TEST_F(FunctionsTest, LargeUploadsStreamWithoutFillingTheGatewaysMemory) {
  deployApp("upload", {{"index.mjs", kUploadHasher}});
  deployApp("upload-fetch", {{"index.js", R"(export default { async fetch(request) {
      const h = (await import('node:crypto')).createHash('sha256');
      let n = 0;
      for await (const c of request.body ?? []) { h.update(c); n += c.length; }
      return Response.json({ bytes: n, sha256: h.digest('hex') });
    } })"}});
  EXPECT_EQ(server_->get("/upload/").status, 200);  // warm, so the peak below is the upload's
  EXPECT_EQ(server_->get("/upload-fetch/", {}, "POST").status, 200);
  constexpr int kMiB = 100;
  Sha256 expected;
  for (int i = 0; i < kMiB; ++i) expected.update(uploadPiece(i));
  std::string want = expected.finishHex();
  for (std::string app : {"upload", "upload-fetch"}) {
    uint64_t before = peakRssKb(server_->pid());
    RawClient client(server_->dataUrl());
    ASSERT_TRUE(client.send("POST /" + app + "/ HTTP/1.1\r\nHost: test\r\nContent-Length: " +
                            std::to_string(kMiB << 20) + "\r\n\r\n"));
    for (int i = 0; i < kMiB; ++i) ASSERT_TRUE(client.send(uploadPiece(i))) << "after " << i << " MiB";
    std::string got = client.readUntil("}");
    EXPECT_NE(got.find("HTTP/1.1 200"), std::string::npos) << got.substr(0, 400);
    EXPECT_NE(got.find("\"bytes\":" + std::to_string(kMiB << 20)), std::string::npos) << got.substr(0, 400);
    EXPECT_NE(got.find(want), std::string::npos) << "the function did not receive the bytes sent: " << got;
    uint64_t after = peakRssKb(server_->pid());
    EXPECT_LT(after - before, 48u * 1024) << app << ": the gateway's peak memory grew by " << (after - before) / 1024
                                          << " MB for a " << kMiB << " MB upload";
  }
}

TEST_F(FunctionsTest, ChunkedUploadsReachNodeStyleHandlersAsABody) {
  deployApp("upload-chunked", {{"index.mjs", kUploadHasher}});
  RawClient client(server_->dataUrl());
  ASSERT_TRUE(client.send("POST /upload-chunked/ HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::string all;
  for (int i = 0; i < 3; ++i) {
    std::string piece = uploadPiece(i);
    all += piece;
    char size[32];
    std::snprintf(size, sizeof size, "%zx\r\n", piece.size());
    ASSERT_TRUE(client.send(size + piece + "\r\n"));
  }
  ASSERT_TRUE(client.send("0\r\n\r\n"));
  std::string got = client.readUntil("}");
  EXPECT_NE(got.find("\"bytes\":" + std::to_string(3 << 20)), std::string::npos) << got.substr(0, 400);
  EXPECT_NE(got.find(sha256Hex(all)), std::string::npos) << got;
  EXPECT_NE(got.find("\"chunked\":\"chunked\""), std::string::npos) << "body parsers look for it: " << got;

  // A small body arrives whole, with its length.
  cli::HttpClient c(server_->dataUrl(), "");
  auto small = c.send("POST", "/upload-chunked/", "hello");
  ASSERT_TRUE(small.ok());
  EXPECT_NE(small->body.find("\"bytes\":5"), std::string::npos) << small->body;
  EXPECT_NE(small->body.find("\"length\":\"5\""), std::string::npos) << small->body;
}

TEST_F(FunctionsTest, AClientThatAbandonsAnUploadAbortsTheRequest) {
  deployApp("upload-abandoned", {{"index.mjs", kUploadHasher}});
  {
    RawClient client(server_->dataUrl());
    ASSERT_TRUE(client.send("POST /upload-abandoned/ HTTP/1.1\r\nHost: test\r\nContent-Length: 104857600\r\n\r\n"));
    for (int i = 0; i < 4; ++i) ASSERT_TRUE(client.send(uploadPiece(i)));
  }  // gone after 4 of 100 MiB
  EXPECT_TRUE(waitFor([&] { return server_->get("/upload-abandoned/aborted").body == "1"; }))
      << "the handler never saw its request aborted";
}

TEST(FunctionsLimits, BodiesOverTheLimitAre413EvenWhenStreamed) {
  TempDir tmp;
  NuboServer server(tmp, {"--max-body-mb", "1"});
  std::string dir = tmp.sub("app");
  writeFile(dir + "/index.mjs", kUploadHasher);
  server.deploy(dir, {"--app", "limited"});
  {
    RawClient client(server.dataUrl());  // declared too large: refused before any of it is read
    ASSERT_TRUE(client.send("POST /limited/ HTTP/1.1\r\nHost: test\r\nContent-Length: 2097152\r\n\r\n"));
    std::string got = client.readUntil("\r\n\r\n");
    EXPECT_NE(got.find("HTTP/1.1 413"), std::string::npos) << got;
  }
  {
    RawClient client(server.dataUrl());  // chunked: found out while streaming
    ASSERT_TRUE(client.send("POST /limited/ HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"));
    std::string piece = uploadPiece(0);
    for (int i = 0; i < 2; ++i) {
      if (!client.send("100000\r\n" + piece + "\r\n")) break;  // the server may stop reading
    }
    std::string got = client.readUntil("max-body-mb");
    EXPECT_NE(got.find("HTTP/1.1 413"), std::string::npos) << got;
  }
  EXPECT_EQ(server.get("/limited/").status, 200) << "the server goes on";
}

// The data plane runs one shard per thread: a request is served by an
// instance on its own shard when there is one with a free slot, else by one
// on another shard (its frames handed over between threads). The same
// traffic must come out right on one shard and on several.
class FunctionsOnShardsTest : public testing::TestWithParam<int> {
 protected:
  TempDir tmp_;
  NuboServer server_{tmp_, {"--threads", std::to_string(GetParam())}};

  // `clients` threads, each with its own connection, each sending
  // `requests` requests through `one(client, thread, i)`, which says
  // whether the answer was right; how many were.
  int runClients(int clients, int requests, const std::function<bool(cli::HttpClient&, int, int)>& one) {
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        cli::HttpClient c(server_.dataUrl(), "");
        for (int i = 0; i < requests; ++i) ok += one(c, t, i) ? 1 : 0;
      });
    }
    for (auto& th : threads) th.join();
    return ok.load();
  }
};

INSTANTIATE_TEST_SUITE_P(Threads, FunctionsOnShardsTest, testing::Values(1, 3));

TEST_P(FunctionsOnShardsTest, ConcurrentRequestsGetTheirOwnAnswers) {
  std::string dir = tmp_.sub("apps/echo");
  writeFile(dir + "/index.js", R"(export default { async fetch(request) {
    const body = await request.text();
    if (new URL(request.url).searchParams.has('stream')) {
      return new Response(new ReadableStream({ async start(c) {
        for (const part of body.split(',')) { c.enqueue(new TextEncoder().encode(part)); await null; }
        c.close();
      } }));
    }
    return Response.json({ body, id: request.headers.get('x-nubo-request-id') });
  } })");
  writeFile(dir + "/nubo.json", R"({"limits": {"concurrency": 8, "max_instances": 3}})");
  server_.deploy(dir, {"--app", "echo"});
  int ok = runClients(16, 25, [](cli::HttpClient& c, int t, int i) {
    std::string body = "a" + std::to_string(t) + ",b" + std::to_string(i);
    bool stream = i % 2 == 1;
    auto r = c.send("POST", stream ? "/echo/?stream" : "/echo/", body);
    if (!r.ok() || r->status != 200) return false;
    if (stream) return r->body == "a" + std::to_string(t) + "b" + std::to_string(i);
    auto j = parseJson(r->body, "echo");
    return j.ok() && (*j)["body"] == body && (*j)["id"] == r->header("x-nubo-request-id");
  });
  EXPECT_EQ(ok, 16 * 25);
}

// A busy deployment gets an instance on each shard whose requests keep it
// busy, though one instance has slots enough: requests then stay on their
// shard. (24 requests at once, 32 slots per instance.)
TEST_P(FunctionsOnShardsTest, ABusyDeploymentGetsAnInstanceOnEachShard) {
  std::string dir = tmp_.sub("apps/slow");
  writeFile(dir + "/index.js", R"(export default { async fetch() {
    await new Promise((r) => setTimeout(r, 20));
    return new Response('ok');
  } })");
  writeFile(dir + "/nubo.json", R"({"limits": {"concurrency": 32, "max_instances": 4}})");
  server_.deploy(dir, {"--app", "slow"});
  int ok = runClients(24, 40, [](cli::HttpClient& c, int, int) {
    auto r = c.send("GET", "/slow/", "");
    return r.ok() && r->status == 200;
  });
  EXPECT_EQ(ok, 24 * 40);
  auto ps = parseJson(server_.nubo({"ps", "slow", "--json"}).out, "ps");
  ASSERT_TRUE(ps.ok());
  EXPECT_EQ(ps->size(), static_cast<size_t>(GetParam())) << ps->dump();
}

}  // namespace
}  // namespace nubo::testing_util
