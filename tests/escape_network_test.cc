// Builds and networked functions once shared the host's network namespace:
// from there they reached the control API, the data plane and every other
// loopback service, and could bind the host's ports (listening on
// [::1]:7070 captured a CLI's request, admin token included). Now each has a
// namespace of its own with egress only. These run as root (veth pairs,
// nftables) and, below, against a server running as uid 65534
// (slirp4netns); "the internet" is an OutsideHost in a namespace of the
// test's own.
#include <gtest/gtest.h>

#include <memory>
#include <set>

#include "escape_network.h"
#include "integration_util.h"
#include "outside_host.h"

namespace nubo::testing_util {
namespace {

int portOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// A host port nothing listens on now.
int freeHostPort() {
  HostListener l;
  return l.port();
}

class NetworkSuite : public SharedServerTest {
 protected:
  static void startServer(bool unprivileged) {
    deployed_.clear();
    outside_ = new OutsideHost();
    ASSERT_TRUE(outside_->ready()) << "could not make the test's outside host";
    tmp_ = new TempDir();
    std::vector<std::string> args = {"--sandbox-max-connections", "8", "--sandbox-dns", outside_->address()};
    if (!unprivileged) args.insert(args.end(), {"--sandbox-deny", outside_->extra() + "/32"});
    server_ = new NuboServer(*tmp_, args, "data", unprivileged);
  }
  static void TearDownTestSuite() {
    SharedServerTest::TearDownTestSuite();
    delete outside_;
    outside_ = nullptr;
  }

  // The probe function, deployed once per app name.
  std::string ask(const std::string& app, const std::string& query) {
    if (!deployed_.count(app)) {
      deployApp(app, {{"index.js", kNetworkProbeJs}, {"nubo.json", R"({"permissions": {"network": true}})"}});
      deployed_.insert(app);
    }
    auto r = server_->get("/" + app + "/?" + query);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.body;
  }
  std::string connect(const std::string& host, int port, const std::string& app = "probe") {
    return ask(app, "op=connect&host=" + host + "&port=" + std::to_string(port));
  }

  static inline OutsideHost* outside_ = nullptr;
  static inline std::set<std::string> deployed_;
};

class EscapeNetworkTest : public NetworkSuite {
 protected:
  static void SetUpTestSuite() { startServer(false); }
};

TEST_F(EscapeNetworkTest, TheServerSaysWhatNetworkedSandboxesGet) {
  EXPECT_NE(server_->log().find("egress-only networks (veth"), std::string::npos) << server_->log();
}

TEST_F(EscapeNetworkTest, EgressReachesTheOutsideFromTheNodesAddress) {
  // Masqueraded: the outside sees the host's address, not the sandbox's.
  EXPECT_EQ(connect(outside_->address(), 80), "connected outside " + outside_->hostSide());
}

TEST_F(EscapeNetworkTest, TheHostsLoopbackServicesAreUnreachable) {
  for (const std::string& url : {server_->controlUrl(), server_->dataUrl()}) {
    EXPECT_EQ(connect("127.0.0.1", portOf(url)), "ECONNREFUSED") << url;
  }
  HostListener listener;
  EXPECT_EQ(connect("127.0.0.1", listener.port()), "ECONNREFUSED");
  EXPECT_EQ(connect("::1", listener.port()), "ECONNREFUSED");
}

TEST_F(EscapeNetworkTest, NoAddressOfTheNodeIsReachable) {
  HostListener listener;  // on every host address
  std::vector<std::string> addresses = hostAddresses();
  addresses.push_back("10.213.0.1");  // the sandboxes' gateway
  for (const auto& ip : addresses) {
    std::string got = connect(ip, listener.port());
    EXPECT_EQ(got.rfind("connected", 0), std::string::npos) << ip << ": " << got;
  }
}

TEST_F(EscapeNetworkTest, LinkLocalAndDeniedNetworksAreRefused) {
  // The outside host answers on extra() too; --sandbox-deny names it.
  EXPECT_TRUE(hostConnects(outside_->extra(), 80));
  std::string got = connect(outside_->extra(), 80);
  EXPECT_EQ(got.rfind("connected", 0), std::string::npos) << got;
}

TEST_F(EscapeNetworkTest, APortBoundInsideIsNotBoundOnTheHost) {
  int port = freeHostPort();
  EXPECT_EQ(ask("probe", "op=listen&host=127.0.0.1&port=" + std::to_string(port)), "listening");
  EXPECT_EQ(ask("probe", "op=listen&host=::1&port=" + std::to_string(port)), "listening");
  EXPECT_FALSE(hostConnects("127.0.0.1", port));
  EXPECT_FALSE(hostConnects("::1", port));
}

TEST_F(EscapeNetworkTest, NoSandboxIsReachableFromAnotherOrFromTheHost) {
  auto who = parseJson(ask("victim", "op=whoami"), "whoami");
  ASSERT_TRUE(who.ok());
  ASSERT_EQ((*who)["addresses"].size(), 1u) << who->dump();
  std::string victim = (*who)["addresses"][0].get<std::string>();
  EXPECT_EQ(victim.rfind("10.213.", 0), 0u) << victim;
  EXPECT_EQ(ask("victim", "op=listen&host=0.0.0.0&port=7000"), "listening");
  std::string got = connect(victim, 7000, "attacker");
  EXPECT_EQ(got.rfind("connected", 0), std::string::npos) << got;
  EXPECT_FALSE(hostConnects(victim, 7000));
}

TEST_F(EscapeNetworkTest, ASandboxHoldsAtMostItsConnections) {
  auto held = parseJson(ask("probe", "op=hold&host=" + outside_->address() + "&port=80&n=12"), "hold");
  ASSERT_TRUE(held.ok());
  EXPECT_EQ((*held)["open"], 8) << held->dump();
  EXPECT_EQ((*held)["failed"], 4) << held->dump();
  // Closed ones stop counting.
  EXPECT_TRUE(waitFor([&] { return connect(outside_->address(), 80).rfind("connected outside", 0) == 0; }));
}

TEST_F(EscapeNetworkTest, ResolversComeFromTheFlag) {
  auto who = parseJson(ask("probe", "op=whoami"), "whoami");
  ASSERT_TRUE(who.ok());
  EXPECT_EQ((*who)["resolv"], "nameserver " + outside_->address() + "\n");
}

// An exec server with the network listened on the host's 127.0.0.1:$PORT,
// reachable without the gateway.
TEST_F(EscapeNetworkTest, ANetworkedExecServerListensInsideOnly) {
  deployApp("execnet", {{"server.js", R"(require('http').createServer((q, s) => s.end(process.env.PORT))
                                           .listen(Number(process.env.PORT), '127.0.0.1'))"},
                        {"nubo.json", R"({"runtime": "exec", "entry": "node server.js",
                                          "permissions": {"network": true}})"}});
  auto r = server_->get("/execnet/");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_FALSE(hostConnects("127.0.0.1", std::stoi(r.body)));
}

// A build's network: the packages it fetches, not the control API.
TEST_F(EscapeNetworkTest, ABuildReachesOutButNotTheControlApi) {
  std::string dir = tmp_->sub("apps/built");
  writeFile(dir + "/probe.js", R"(const net = require('net');
    const fs = require('fs');
    function attempt(host, port) {
      return new Promise((resolve) => {
        const s = net.connect({ host, port });
        const t = setTimeout(() => { s.destroy(); resolve('TIMEOUT'); }, 1500);
        s.once('data', (d) => { clearTimeout(t); s.destroy(); resolve(String(d).trim()); });
        s.once('connect', () => setTimeout(() => { clearTimeout(t); s.destroy(); resolve('connected'); }, 300));
        s.once('error', (e) => { clearTimeout(t); resolve(e.code); });
      });
    }
    (async () => {
      const api = await attempt('127.0.0.1', Number(process.argv[2]));
      const out = await attempt(process.argv[3], 80);
      fs.mkdirSync('site', { recursive: true });
      fs.writeFileSync('site/index.html', api + ' / ' + out);
    })();)");
  writeFile(dir + "/nubo.json", R"({"runtime": "static", "build": {"command": "node probe.js )" +
                                    std::to_string(portOf(server_->controlUrl())) + " " + outside_->address() +
                                    R"(", "output": "site"}})");
  auto r = server_->nubo({"deploy", dir, "--app", "built"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server_->get("/built/").body, "ECONNREFUSED / outside " + outside_->hostSide());
}

// A server killed before it could remove its nftables table: the next one
// to start removes it (every packet on the host would pass its chains).
TEST(EscapeNetworkTablesTest, TablesOfKilledServersAreRemoved) {
  if (::geteuid() != 0) GTEST_SKIP() << "veth networks need root";
  TempDir tmp;
  auto tables = [] {
    ProcResult r = runProcess({"/usr/sbin/nft", "list", "tables", "inet"}, {}, "/tmp");
    return r.out;
  };
  auto first = std::make_unique<NuboServer>(tmp, std::vector<std::string>{}, "first");
  std::string mine = "_" + std::to_string(first->pid()) + "\n";
  ASSERT_NE(tables().find(mine), std::string::npos) << tables();
  first->stop(SIGKILL);  // it cannot remove its table (another server starting meanwhile may)
  NuboServer second(tmp, {}, "second");
  EXPECT_EQ(tables().find(mine), std::string::npos) << tables();
  std::string its = "_" + std::to_string(second.pid()) + "\n";
  EXPECT_NE(tables().find(its), std::string::npos) << tables();
  EXPECT_EQ(second.stop(SIGTERM), 0);
  EXPECT_EQ(tables().find(its), std::string::npos) << "removed at shutdown: " << tables();
}

// The same against an unprivileged install: slirp4netns keeps the host's
// loopback out and opens connections as the server's own sockets.
class EscapeNetworkUnprivilegedTest : public NetworkSuite {
 protected:
  static void SetUpTestSuite() { startServer(true); }
};

TEST_F(EscapeNetworkUnprivilegedTest, EgressWorksAndTheHostsLoopbackDoesNot) {
  EXPECT_NE(server_->log().find("slirp4netns"), std::string::npos) << server_->log();
  EXPECT_EQ(connect(outside_->address(), 80).rfind("connected outside", 0), 0u);
  EXPECT_EQ(connect("127.0.0.1", portOf(server_->controlUrl())), "ECONNREFUSED");
  EXPECT_EQ(connect("10.0.2.2", portOf(server_->controlUrl())).rfind("connected", 0), std::string::npos);
  int port = freeHostPort();
  EXPECT_EQ(ask("probe", "op=listen&host=127.0.0.1&port=" + std::to_string(port)), "listening");
  EXPECT_FALSE(hostConnects("127.0.0.1", port));
  auto held = parseJson(ask("probe", "op=hold&host=" + outside_->address() + "&port=80&n=60"), "hold");
  ASSERT_TRUE(held.ok());
  EXPECT_LT((*held)["open"].get<int>(), 60) << held->dump();
}

}  // namespace
}  // namespace nubo::testing_util
