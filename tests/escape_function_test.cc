// What a hostile function can do to the gateway, its clients and the
// platform: tried for real against `nubo serve` running node instances.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include <climits>
#include <set>
#include <thread>
#include <cstdlib>

#include "common/sha256.h"
#include "escape_attempts.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

int portOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// Sends `request` and reads until `until` has arrived or the server closes.
std::string exchange(int port, const std::string& request, const std::string& until) {
  int fd = connectLoopback(port, 10);
  EXPECT_GE(fd, 0);
  if (fd < 0) return "";
  EXPECT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  std::string got;
  char buf[8192];
  while (got.find(until) == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got;
}

class EscapeFunctionTest : public SharedServerTest {};

// A handshake to a function that does not take WebSockets is the GET it
// also is: answered as HTTP, and the connection stays HTTP (the next
// request on it is served, not relayed as WebSocket bytes). A function
// cannot switch a plain request's connection by answering 101.
TEST_F(EscapeFunctionTest, OnlyAnAcceptedHandshakeSwitchesTheConnection) {
  deployApp("wsapp", {{"index.js", R"(module.exports = (req, res) => {
      if (req.url === '/switch') { res.writeHead(101, { upgrade: 'websocket', connection: 'upgrade' }); return res.end(); }
      res.end('plain get');
    })"}});
  ASSERT_EQ(server_->get("/wsapp/").body, "plain get");
  std::string got = exchange(portOf(server_->dataUrl()),
                             "GET /wsapp/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                             "GET /wsapp/again HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                             "plain getHTTP/1.1 200");
  EXPECT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
  EXPECT_EQ(got.find("101"), std::string::npos) << got;
  EXPECT_NE(got.find("plain get", got.find("HTTP/1.1 200", 1)), std::string::npos) << got;

  std::string switched = exchange(portOf(server_->dataUrl()),
                                  "GET /wsapp/switch HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", "\r\n\r\n");
  EXPECT_EQ(switched.rfind("HTTP/1.1 502", 0), 0u) << switched;
}

// A function that answers "100 Continue" as its final response once sent
// it as such: the client then took the next response for this request.
TEST_F(EscapeFunctionTest, AnInformationalStatusIsNotAFinalAnswer) {
  deployApp("informal", {{"index.js", R"(module.exports = (req, res) => {
      if (req.url === '/next') { res.end('the next answer'); return; }
      res.statusCode = 100; res.end('sneaky');
    })"}});
  std::string both = exchange(portOf(server_->dataUrl()),
                              "GET /informal/ HTTP/1.1\r\nHost: x\r\n\r\n"
                              "GET /informal/next HTTP/1.1\r\nHost: x\r\n\r\n",
                              "the next answer");
  EXPECT_EQ(both.rfind("HTTP/1.1 502", 0), 0u) << both;
  EXPECT_EQ(both.find("HTTP/1.1 100"), std::string::npos) << both;
  auto second = both.find("HTTP/1.1 200");
  ASSERT_NE(second, std::string::npos) << both;
  EXPECT_NE(both.find("the next answer", second), std::string::npos) << both;
  auto logs = server_->nubo({"logs", "informal"});
  EXPECT_NE(logs.out.find("cannot be a final response"), std::string::npos) << logs.out;
}

// Headers the client marks as hop-by-hop stay with the gateway, and a client
// cannot choose the request id its request is logged under.
TEST_F(EscapeFunctionTest, HopByHopAndRequestIdHeadersFromClientsAreNotForwarded) {
  deployApp("headers", {{"index.js", R"(module.exports = (req, res) => {
      res.setHeader('content-type', 'application/json'); res.end(JSON.stringify(req.headers));
    })"}});
  auto r = server_->get("/headers/", {"Connection: keep-alive, X-Private", "X-Private: secret",
                                      "X-Nubo-Request-Id: forged", "X-Kept: yes"});
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = parseJson(r.body, "headers");
  ASSERT_TRUE(j.ok()) << r.body;
  EXPECT_FALSE(j->contains("x-private")) << r.body;
  EXPECT_EQ((*j)["x-kept"], "yes") << r.body;
  EXPECT_NE((*j)["x-nubo-request-id"], "forged") << r.body;
}

// "//evil.example" once redirected to "//evil.example/": another host.
TEST_F(EscapeFunctionTest, ARedirectNeverLeavesTheSite) {
  deployApp("redir", {{"index.html", "home"}, {"evil.example/index.html", "inner"}});
  for (std::string path : {"//evil.example", "///evil.example"}) {
    auto r = server_->get(path, {"Host: redir.localhost"});
    EXPECT_EQ(r.status, 308) << path << " " << r.body;
    EXPECT_EQ(r.header("location"), "/evil.example/") << path;
  }
}

// Socket families are an allow-list compared on the low 32 bits the kernel
// reads: 0x100000002 once made an AF_INET socket without the network.
TEST_F(EscapeFunctionTest, SocketFamiliesAreAnAllowListOfWhatTheFunctionMayUse) {
  std::string dir = tmp_->sub("apps/sockets");
  writeFile(dir + "/nubo.json", R"({"runtime": "native"})");
  writeFile(dir + "/main.cc", R"(#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <cerrno>
#include <cstring>
#include "nubo.h"
static std::string attempt(long family, int type, int protocol) {
  long fd = syscall(SYS_socket, family, type, protocol);
  if (fd >= 0) { close(static_cast<int>(fd)); return "made"; }
  return strerrorname_np(errno);
}
nubo::Response handle(const nubo::Request&) {
  int sv[2];
  std::string pair = socketpair(AF_INET, SOCK_STREAM, 0, sv) == 0 ? "made" : strerrorname_np(errno);
  return nubo::Response::text("inet64=" + attempt(0x100000002L, SOCK_STREAM, 0) +
                              " inet=" + attempt(AF_INET, SOCK_STREAM, 0) +
                              " vsock=" + attempt(40, SOCK_STREAM, 0) +
                              " vsock64=" + attempt(0x100000028L, SOCK_STREAM, 0) +
                              " netlink=" + attempt(AF_NETLINK, SOCK_DGRAM, 0) +
                              " packet=" + attempt(AF_PACKET, SOCK_DGRAM, 0) +
                              " pair=" + pair + " unix=" + attempt(AF_UNIX, SOCK_STREAM, 0));
}
)");
  auto r = server_->nubo({"deploy", dir, "--app", "sockets"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  std::string got = server_->get("/sockets/").body;
  EXPECT_EQ(got, "inet64=EACCES inet=EACCES vsock=EAFNOSUPPORT vsock64=EAFNOSUPPORT netlink=EAFNOSUPPORT "
                 "packet=EAFNOSUPPORT pair=EACCES unix=made") << got;
}

TEST_F(EscapeFunctionTest, DevIsReadOnlyAndTmpHasFewInodes) {
  tryFillingDevAndTmp(*server_, [this](const std::string& app, const auto& files) { return deployApp(app, files); });
}

// Processes orphaned inside an instance are reaped: the runtime's PID 1
// once left them as zombies for as long as the instance lived.
TEST_F(EscapeFunctionTest, OrphansInsideAnInstanceAreReaped) {
  deployApp("orphans", {{"server.py", R"(import os, time
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == '/spawn':
            pid = os.fork()
            if pid == 0:
                if os.fork() == 0:
                    time.sleep(0.05)
                    os._exit(0)
                os._exit(0)
            os.waitpid(pid, 0)
            body = b'spawned'
        else:
            zombies = 0
            for p in os.listdir('/proc'):
                if p.isdigit():
                    try:
                        with open('/proc/%s/stat' % p) as f:
                            if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                                zombies += 1
                    except OSError:
                        pass
            body = str(zombies).encode()
        self.send_response(200)
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
HTTPServer(('127.0.0.1', int(os.environ['PORT'])), H).serve_forever()
)"},
                        {"nubo.json", R"({"runtime": "exec", "entry": "python3 server.py"})"}});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(server_->get("/orphans/spawn").body, "spawned");
  EXPECT_TRUE(waitFor([&] { return server_->get("/orphans/zombies").body == "0"; }))
      << server_->get("/orphans/zombies").body << " zombies";
}

// Removing an app once left its instances running, printing into a log
// file that came back after the removal.
TEST(EscapeFunctionAppTest, RemovingAnAppStopsItsInstancesAndTheirLogs) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string dir = tmp.sub("chatty");
  writeFile(dir + "/index.js", R"(setInterval(() => console.log('still here'), 20);
    module.exports = (req, res) => res.end('ok'))");
  server.deploy(dir, {"--app", "chatty"});
  ASSERT_EQ(server.get("/chatty/").body, "ok");
  auto ps = parseJson(server.nubo({"ps", "chatty", "--json"}).out, "ps");
  ASSERT_TRUE(ps.ok() && ps->size() == 1) << (ps.ok() ? ps->dump() : "");
  pid_t pid = (*ps)[0]["pid"];
  std::string log = server.dataDir() + "/logs/chatty.log";
  ASSERT_TRUE(waitFor([&] { return slurp(log).find("still here") != std::string::npos; }));
  ASSERT_EQ(server.nubo({"apps", "rm", "chatty"}).exit_code, 0);
  EXPECT_TRUE(waitFor([&] { return ::kill(pid, 0) != 0; })) << "the instance still runs";
  auto after = parseJson(server.nubo({"ps", "--json"}).out, "ps");
  EXPECT_TRUE(after.ok() && after->empty()) << (after.ok() ? after->dump() : "");
  // Give a leftover writer every chance to bring the file back.
  EXPECT_FALSE(waitFor([&] { return std::filesystem::exists(log); }, std::chrono::milliseconds(300)));
}

// An instance's cgroup goes with it, and at shutdown nothing of the
// server's is left in the cgroup tree.
TEST(EscapeFunctionAppTest, CgroupsAreRemovedAtShutdown) {
  TempDir tmp;
  NuboServer server(tmp);
  char real[PATH_MAX];
  ASSERT_NE(::realpath(server.dataDir().c_str(), real), nullptr);
  std::string scope = sha256Hex(real).substr(0, 12);
  std::string v1 = "/sys/fs/cgroup/memory/nubo/" + scope, v2 = "/sys/fs/cgroup/nubo/" + scope;
  std::string dir = std::filesystem::exists(v1) ? v1 : v2;
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no cgroup limits on this machine: " << server.log();
  std::string app = tmp.sub("cg");
  writeFile(app + "/index.js", "module.exports = (req, res) => res.end('ok')");
  server.deploy(app, {"--app", "cg"});
  ASSERT_EQ(server.get("/cg/").body, "ok");
  auto groups = [&] {
    size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) n += e.is_directory();
    return n;
  };
  EXPECT_GE(groups(), 1u);  // the instance's, and the stems'
  EXPECT_EQ(server.stop(SIGTERM), 0);
  EXPECT_FALSE(std::filesystem::exists(dir)) << groups() << " groups left in " << dir;
}

// ctx.waitUntil() once held an instance forever; it is bounded by
// --wait-until-s after the last response.
TEST(EscapeFunctionAppTest, WaitUntilWorkIsBounded) {
  TempDir tmp;
  NuboServer server(tmp, {"--wait-until-s", "1"});
  std::string dir = tmp.sub("forever");
  writeFile(dir + "/index.js", R"(export default { fetch(request, env, ctx) {
      ctx.waitUntil(new Promise(() => {}));
      return new Response('started');
    } })");
  server.deploy(dir, {"--app", "forever"});
  ASSERT_EQ(server.get("/forever/").body, "started");
  auto count = [&] {
    auto ps = parseJson(server.nubo({"ps", "forever", "--json"}).out, "ps");
    return ps.ok() ? ps->size() : size_t{99};
  };
  EXPECT_EQ(count(), 1u);
  EXPECT_TRUE(waitFor([&] { return count() == 0; }, std::chrono::seconds(10)));
  auto logs = server.nubo({"logs", "forever"});
  EXPECT_NE(logs.out.find("ctx.waitUntil() work was still pending 1 s after the last response"), std::string::npos)
      << logs.out;
}

// One app's busy loop raised another app's p99 from 2.8 to 14.7 ms: every
// instance had the full CPU weight, so a hog with four instances got four
// shares. Now an app's instances split its weight (limits.cpu).
TEST_F(EscapeFunctionTest, AnAppsInstancesShareOneCpuWeight) {
  std::string log = server_->log();
  auto without = log.find("running without:");
  std::string missing = without == std::string::npos ? "" : log.substr(without, log.find('\n', without) - without);
  if (missing.find("cgroup") != std::string::npos) GTEST_SKIP() << "no CPU cgroups here: " << missing;
  deployApp("hog", {{"index.js", R"(module.exports = (req, res) => {
                       const end = Date.now() + 1000; while (Date.now() < end) {} res.end('spun') })"},
                    {"nubo.json", R"({"limits": {"cpu": 0.5, "concurrency": 1, "max_instances": 3,
                                                  "min_instances": 1, "idle_ttl_s": 1}})"}});
  deployApp("calm", {{"index.js", "module.exports = (req, res) => res.end('calm')"}});
  std::vector<std::thread> load;
  for (int i = 0; i < 3; ++i) load.emplace_back([] { server_->get("/hog/"); });
  for (auto& t : load) t.join();
  EXPECT_EQ(server_->get("/calm/").body, "calm");
  // Each instance's CPU weight: v1 "N:cpu:/nubo/<scope>/<id>" (cpu.shares),
  // v2 "0::/nubo/<scope>/<id>" (cpu.weight).
  auto weightsOf = [](const std::string& app) {
    std::vector<int> weights;
    auto ps = parseJson(server_->nubo({"ps", app, "--json"}).out, "ps");
    if (!ps.ok()) return weights;
    for (const auto& i : *ps) {
      std::istringstream lines(slurp("/proc/" + std::to_string(i["pid"].get<int>()) + "/cgroup"));
      for (std::string line; std::getline(lines, line);) {
        auto at = line.find(":/nubo/");
        if (at == std::string::npos) continue;
        std::string ctl = line.substr(line.find(':') + 1, at - line.find(':') - 1);
        std::string group = line.substr(at + 1);
        if (ctl == "cpu" || ctl == "cpu,cpuacct") weights.push_back(std::atoi(slurp("/sys/fs/cgroup/cpu" + group + "/cpu.shares").c_str()));
        if (ctl.empty()) weights.push_back(std::atoi(slurp("/sys/fs/cgroup" + group + "/cpu.weight").c_str()));
      }
    }
    return weights;
  };
  std::vector<int> hog = weightsOf("hog"), calm = weightsOf("calm");
  ASSERT_EQ(hog.size(), 3u) << "the load made three instances";
  ASSERT_EQ(calm.size(), 1u);
  EXPECT_EQ(hog[0], hog[1]);
  EXPECT_EQ(hog[1], hog[2]);
  // Together half of what the default gives one app (limits.cpu 0.5 against 1).
  EXPECT_NEAR(2 * (hog[0] + hog[1] + hog[2]), calm[0], 8) << hog[0] << " x 3 against " << calm[0];
  // Idle, the pool shrinks to one instance, which takes the app's whole weight.
  EXPECT_TRUE(waitFor([&] { return weightsOf("hog").size() == 1; }, std::chrono::seconds(20)));
  EXPECT_TRUE(waitFor([&] {
    auto w = weightsOf("hog");
    return w.size() == 1 && std::abs(2 * w[0] - calm[0]) <= 2;
  }));
}

TEST_F(EscapeFunctionTest, AnAppCannotAskForMoreCpuThanTheServerGrants) {
  std::string dir = tmp_->sub("apps/greedy");
  writeFile(dir + "/index.js", "module.exports = (req, res) => res.end('x')");
  writeFile(dir + "/nubo.json", R"({"limits": {"cpu": 12}})");
  auto r = server_->nubo({"deploy", dir});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("limits.cpu: 12 is more than this server grants an app (4)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--max-app-cpu"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace nubo::testing_util
