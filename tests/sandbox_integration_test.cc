// Isolation, end to end: limits and permissions enforced by the kernel.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <thread>

#include "escape_attempts.h"
#include "integration_util.h"
#include "outside_host.h"

namespace nubo::testing_util {
namespace {

// The command names (comm) of `root` and every process below it.
std::vector<std::string> processTree(int root) {
  std::map<int, std::vector<int>> children;
  std::map<int, std::string> names;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = slurp("/proc/" + pid + "/stat");
    auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close + 4 >= stat.size()) continue;
    names[std::stoi(pid)] = stat.substr(open + 1, close - open - 1);
    children[std::atoi(stat.c_str() + close + 4)].push_back(std::stoi(pid));
  }
  std::vector<std::string> out;
  std::vector<int> todo = {root};
  while (!todo.empty()) {
    int p = todo.back();
    todo.pop_back();
    if (names.count(p)) out.push_back(names[p]);
    for (int c : children[p]) todo.push_back(c);
  }
  return out;
}

class SandboxTest : public SharedServerTest {
 protected:
  static bool sandboxed() { return server_->log().find("every isolation layer is active") != std::string::npos; }
};

// A TCP server on loopback that greets and closes; stops with the test.
class Greeter {
 public:
  Greeter() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::listen(fd_, 16);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        ::write(c, "hello from the host\n", 20);
        ::close(c);
      }
    });
  }
  ~Greeter() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
  std::thread thread_;
};

TEST_F(SandboxTest, TheSandboxIsActiveOnThisMachine) {
  // Every layer is available on the CI machine; elsewhere, the start-up
  // warning names what is missing and the tests below say what they saw.
  EXPECT_TRUE(sandboxed()) << server_->log();
}

// Without permissions.network a function reaches nothing, not even the
// host's loopback; with it, it reaches out (to a host of the test's own, in
// a namespace of its own: needs root) but still not the host's loopback
// (tests/escape_network_test.cc tries the rest).
TEST_F(SandboxTest, NetworkOnlyWhenPermitted) {
  Greeter greeter;
  std::unique_ptr<OutsideHost> outside;
  if (::geteuid() == 0) outside = std::make_unique<OutsideHost>();
  std::string code = R"(import net from 'node:net';
    function attempt(host, port) {
      return new Promise((resolve) => {
        let s;
        try { s = net.connect(port, host); } catch (e) { return resolve('blocked ' + e.code); }
        s.once('data', (d) => { s.destroy(); resolve('got ' + String(d).trim()); });
        s.on('error', (e) => resolve('blocked ' + e.code));
      });
    }
    export default { async fetch() {
      return Response.json({ host: await attempt('127.0.0.1', PORT), outside: await attempt('OUTSIDE', 80) });
    } })";
  code.replace(code.find("PORT"), 4, std::to_string(greeter.port()));
  code.replace(code.find("OUTSIDE"), 7, outside ? outside->address() : "127.0.0.1");
  deployApp("offline", {{"index.js", code}});
  deployApp("online", {{"index.js", code}, {"nubo.json", R"({"permissions": {"network": true}})"}});
  auto off = parseJson(server_->get("/offline/").body, "offline");
  ASSERT_TRUE(off.ok());
  EXPECT_EQ((*off)["host"].get<std::string>().substr(0, 8), "blocked ") << off->dump();
  EXPECT_EQ((*off)["outside"].get<std::string>().substr(0, 8), "blocked ") << off->dump();
  auto on = parseJson(server_->get("/online/").body, "online");
  ASSERT_TRUE(on.ok());
  EXPECT_EQ((*on)["host"], "blocked ECONNREFUSED") << on->dump();
  if (outside) {
    EXPECT_EQ((*on)["outside"].get<std::string>().substr(0, 12), "got outside ") << on->dump();
  }
}

TEST_F(SandboxTest, SecretsOfTheHostAndThePlatformAreInvisible) {
  std::string code = R"(import fs from 'node:fs';
    const tryRead = (p) => { try { fs.readFileSync(p); return 'READ'; } catch (e) { return e.code; } };
    export default { fetch() {
      return Response.json({ shadow: tryRead('/etc/shadow'), token: tryRead('TOKEN'), data: tryRead('DATA/meta.db'),
                             uid: process.getuid(), root: fs.readdirSync('/').sort(),
                             writeApp: (() => { try { fs.writeFileSync('/app/x', '1'); return 'WROTE'; } catch (e) { return e.code; } })() });
    } })";
  code.replace(code.find("TOKEN"), 5, server_->dataDir() + "/admin.token");
  code.replace(code.find("DATA"), 4, server_->dataDir());
  deployApp("snoop", {{"index.js", code}});
  auto r = server_->get("/snoop/");
  auto j = parseJson(r.body, "snoop");
  ASSERT_TRUE(j.ok()) << r.body;
  EXPECT_EQ((*j)["shadow"], "ENOENT");
  EXPECT_EQ((*j)["token"], "ENOENT");
  EXPECT_EQ((*j)["data"], "ENOENT");
  EXPECT_NE((*j)["uid"], 0);
  EXPECT_EQ((*j)["writeApp"], "EROFS");
  for (const auto& entry : (*j)["root"]) EXPECT_NE(entry, "root") << "host /root visible";
}

// The CPU weight of an instance's cgroup ("" when there is no cpu controller).
std::string cpuWeight(const std::string& group) {
  for (const auto& file : {"/sys/fs/cgroup/cpu" + group + "/cpu.shares", "/sys/fs/cgroup" + group + "/cpu.weight"}) {
    std::string v = slurp(file);
    if (!v.empty()) return v.substr(0, v.find('\n'));
  }
  return "";
}

TEST_F(SandboxTest, StemsWarmUpAtBackgroundCpuWeightAndServeAtTheNormalOne) {
  deployApp("weighted", {{"index.js", "export default { fetch() { return new Response('w'); } }"}});
  ASSERT_EQ(server_->get("/weighted/").status, 200);
  auto stems = [&] {
    auto j = parseJson(server_->control("GET", "/v1/instances").body, "instances");
    return j.ok() ? j->value("stems", 0) : 0;
  };
  ASSERT_TRUE(waitFor([&] { return stems() >= 2; }));
  auto ps = parseJson(server_->nubo({"ps", "weighted", "--json"}).out, "ps");
  ASSERT_TRUE(ps.ok() && ps->size() == 1);
  // "N:cpu:/nubo/<scope>/<instance>" (v1) or "0::/nubo/<scope>/<instance>" (v2).
  std::string group;
  std::istringstream lines(slurp("/proc/" + std::to_string((*ps)[0]["pid"].get<int>()) + "/cgroup"));
  for (std::string line; std::getline(lines, line);) {
    auto at = line.find(":/nubo/");
    bool cpu = line.find(":cpu:") != std::string::npos || line.find(":cpu,") != std::string::npos ||
               line.rfind("0::", 0) == 0;
    if (at != std::string::npos && cpu) group = line.substr(at + 1);
  }
  if (group.empty() || cpuWeight(group).empty()) GTEST_SKIP() << "no cpu controller for instances here";
  std::string normal = cpuWeight(group);
  EXPECT_TRUE(normal == "1024" || normal == "100") << normal;  // the kernel's default weight
  // Its siblings include the stems, warming up or waiting at the lowest weight.
  std::string scope = group.substr(0, group.rfind('/'));
  int background = 0;
  std::string base = std::filesystem::exists("/sys/fs/cgroup/cpu" + scope) ? "/sys/fs/cgroup/cpu" : "/sys/fs/cgroup";
  for (const auto& e : std::filesystem::directory_iterator(base + scope)) {
    if (!e.is_directory()) continue;
    std::string w = cpuWeight(scope + "/" + e.path().filename().string());
    if (w == "2" || w == "1") background++;
  }
  EXPECT_GE(background, 2) << "the stems' groups in " << base + scope;
}

TEST_F(SandboxTest, MemoryOverTheLimitKillsOnlyThatInstance) {
  deployApp("hog", {{"index.js", R"(export default { fetch(request) {
      if (new URL(request.url).pathname === '/hog') {
        const keep = [];
        for (;;) keep.push(Buffer.alloc(8 << 20, 1));
      }
      return new Response('fine');
    } })"}, {"nubo.json", R"({"limits": {"memory_mb": 64}})"}});
  deployApp("neighbour", {{"index.js", "export default { fetch() { return new Response('unaffected'); } }"}});
  EXPECT_EQ(server_->get("/neighbour/").body, "unaffected");
  auto r = server_->get("/hog/hog");
  EXPECT_GE(r.status, 500);
  EXPECT_NE(r.body.find("memory"), std::string::npos) << r.body;
  EXPECT_EQ(server_->get("/neighbour/").body, "unaffected");
  EXPECT_EQ(server_->get("/hog/").body, "fine");  // replaced
  EXPECT_EQ(server_->get("/_nubo/healthz").status, 200);
}

TEST_F(SandboxTest, TheRootHoldsOnlyWhatTheRuntimeNeeds) {
  deployApp("root-view", {{"index.js", R"(import fs from 'node:fs';
    const exists = (p) => { try { fs.statSync(p); return true; } catch { return false; } };
    export default { fetch() {
      return Response.json({
        usrBin: fs.readdirSync('/usr/bin'),
        node: exists(process.execPath),
        shell: exists('/bin/sh'), python: exists('/usr/bin/python3'), apt: exists('/usr/bin/apt'),
        hostEtc: exists('/etc/shadow') || exists('/etc/hostname') || exists('/etc/os-release'),
        certs: exists('/etc/ssl/certs'),
      });
    } })"}});
  if (!sandboxed()) GTEST_SKIP() << "the sandbox is not fully available here";
  auto r = server_->get("/root-view/");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = parseJson(r.body, "root view");
  ASSERT_TRUE(j.ok()) << r.body;
  EXPECT_EQ((*j)["usrBin"], Json::parse(R"(["node"])")) << "only the runtime's program: " << r.body;
  EXPECT_EQ((*j)["node"], true);
  EXPECT_EQ((*j)["shell"], false);
  EXPECT_EQ((*j)["python"], false);
  EXPECT_EQ((*j)["apt"], false);
  EXPECT_EQ((*j)["hostEtc"], false);
  EXPECT_EQ((*j)["certs"], true);
}

TEST_F(SandboxTest, AForkBombIsContained) {
  deployApp("calm", {{"index.js", "export default { fetch() { return new Response('calm'); } }"}});
  tryForkBomb(*server_, tmp_->sub("apps/bomb"), [this](const std::string& app, const auto& files) {
    return deployApp(app, files);
  });
  EXPECT_EQ(server_->get("/calm/").body, "calm");
}

// Runtime "exec": any program serving HTTP on $PORT, here a Python server.
const char* kPythonServer = R"(import http.server, json, os, socket, sys
def reach(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return "reached"
    except OSError as e:
        return "blocked"
class H(http.server.BaseHTTPRequestHandler):
    def reply(self, status, body, kind="application/json"):
        self.send_response(status)
        self.send_header("content-type", kind)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path == "/exit":
            os._exit(3)
        self.reply(200, json.dumps({"path": self.path, "greeting": os.environ.get("GREETING"),
                                    "host": reach(HOST_PORT), "uid": os.getuid()}).encode())
    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.reply(201, data.upper(), "text/plain")
    def log_message(self, fmt, *args):
        print("served", fmt % args, flush=True)
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
)";

TEST_F(SandboxTest, AnExecProgramServesBehindTheGatewayAndReachesNoHostNetwork) {
  Greeter greeter;
  std::string code = kPythonServer;
  code.replace(code.find("HOST_PORT"), 9, std::to_string(greeter.port()));
  deployApp("py", {{"server.py", code},
                   {"nubo.json", R"({"runtime": "exec", "entry": "python3 server.py", "env": {"GREETING": "hi"}})"}});
  auto r = server_->get("/py/some/path?q=1");
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = parseJson(r.body, "py");
  ASSERT_TRUE(j.ok()) << r.body;
  EXPECT_EQ((*j)["path"], "/some/path?q=1");
  EXPECT_EQ((*j)["greeting"], "hi");
  EXPECT_EQ((*j)["host"], "blocked") << "its loopback is its own";
  EXPECT_NE((*j)["uid"], 0);
  EXPECT_FALSE(r.header("x-nubo-request-id").empty());
  cli::HttpClient c(server_->dataUrl(), "");
  auto post = c.send("POST", "/py/", "shout this");
  ASSERT_TRUE(post.ok());
  EXPECT_EQ(post->status, 201);
  EXPECT_EQ(post->body, "SHOUT THIS");
  bool logged = waitFor([&] { return server_->nubo({"logs", "py"}).out.find("served") != std::string::npos; });
  EXPECT_TRUE(logged);

  // No Node runs for it: the instance is nubo's exec proxy and the program.
  auto ps = parseJson(server_->nubo({"ps", "py", "--json"}).out, "ps");
  ASSERT_TRUE(ps.ok() && ps->is_array() && !ps->empty());
  std::vector<std::string> names = processTree((*ps)[0]["pid"].get<int>());
  EXPECT_NE(std::find(names.begin(), names.end(), "python3"), names.end()) << ::testing::PrintToString(names);
  EXPECT_EQ(std::find(names.begin(), names.end(), "node"), names.end()) << ::testing::PrintToString(names);
}

TEST_F(SandboxTest, AnExecServerThatExitsIs502AndIsReplaced) {
  std::string code = kPythonServer;
  code.replace(code.find("HOST_PORT"), 9, "1");
  deployApp("pyexit", {{"server.py", code}, {"nubo.json", R"({"runtime": "exec", "entry": "python3 server.py"})"}});
  EXPECT_EQ(server_->get("/pyexit/").status, 200);
  EXPECT_EQ(server_->get("/pyexit/exit").status, 502);
  EXPECT_EQ(server_->get("/pyexit/").status, 200) << "a new instance serves the next request";
}

// The exec proxy keeps connections to the program alive between bodiless
// requests, and one the program closed without saying so is replaced: the
// request is sent again, not failed.
TEST_F(SandboxTest, ExecConnectionsAreKeptAliveAndAStaleOneIsReplaced) {
  const char* server = R"(import http.server, os
conns = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def setup(self):
        global conns
        conns += 1
        super().setup()
    def do_GET(self):
        body = str(conns).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/drop":
            self.close_connection = True  # closes it without saying so
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
)";
  deployApp("pykeep", {{"server.py", server},
                       {"nubo.json", R"({"runtime": "exec", "entry": "python3 server.py",
                                         "limits": {"max_instances": 1}})"}});
  auto first = server_->get("/pykeep/");
  ASSERT_EQ(first.status, 200) << first.body;
  for (int i = 0; i < 3; ++i) EXPECT_EQ(server_->get("/pykeep/").body, first.body) << "one connection, kept";
  EXPECT_EQ(server_->get("/pykeep/drop").body, first.body);
  auto after = server_->get("/pykeep/");
  EXPECT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(after.body, std::to_string(std::stoi(first.body) + 1)) << "a new connection after the stale one";
}

TEST_F(SandboxTest, AnExecDeploymentWithoutACommandIsRefused) {
  std::string dir = tmp_->sub("apps/nocmd");
  writeFile(dir + "/nubo.json", R"({"runtime": "exec"})");
  writeFile(dir + "/server.py", "print(1)\n");
  auto r = server_->nubo({"deploy", dir, "--app", "nocmd"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("needs the command that starts your HTTP server"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace nubo::testing_util
