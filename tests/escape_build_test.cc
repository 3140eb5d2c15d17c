// What a hostile build can do to the server: tried for real against
// `nubo serve`, each test the attack and what the platform must answer.
#include <gtest/gtest.h>
#include <signal.h>

#include <thread>

#include "integration_util.h"

namespace nubo::testing_util {
namespace {

// The server's resident memory, from /proc.
uint64_t residentBytes(pid_t pid) {
  std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  return std::stoull(status.substr(at + 6)) * 1024;
}

std::string newestDeployment(const NuboServer& server, const std::string& app, std::string* state = nullptr) {
  auto j = parseJson(server.control("GET", "/v1/apps/" + app + "/deployments").body, "list");
  if (!j.ok() || !j->contains("deployments") || (*j)["deployments"].empty()) return "";
  if (state) *state = (*j)["deployments"][0]["state"];
  return (*j)["deployments"][0]["id"];
}

// A build whose output names a 64 GiB (sparse) file: the server once read
// it whole into memory and was killed, then again at every restart.
TEST(EscapeBuildTest, AHugeOutputFileFailsTheBuildAndTheServerStaysUp) {
  TempDir tmp;
  NuboServer server(tmp, {"--build-max-output-mb", "64"});
  std::string dir = tmp.sub("huge");
  writeFile(dir + "/nubo.json", R"({"runtime": "static", "build": {
      "command": "mkdir -p dist && echo hi > dist/index.html && truncate -s 64G dist/x", "output": "dist"}})");
  auto r = server.nubo({"deploy", dir, "--app", "huge"});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("over the limit"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--build-max-output-mb"), std::string::npos) << r.err;
  std::string state;
  std::string id = newestDeployment(server, "huge", &state);
  EXPECT_EQ(state, "FAILED");
  EXPECT_EQ(::kill(server.pid(), 0), 0) << "the server died";
  EXPECT_LT(residentBytes(server.pid()), 512ull << 20);
  EXPECT_EQ(server.get("/_nubo/healthz").status, 200);
  // Its folders are gone with it.
  EXPECT_FALSE(std::filesystem::exists(server.dataDir() + "/builds/" + id));
}

// A build once could fill the disk through its folders: they are bounded,
// whether it writes and keeps running or writes quickly and exits.
TEST(EscapeBuildTest, ABuildFillingItsFoldersIsStopped) {
  TempDir tmp;
  NuboServer server(tmp, {"--build-max-disk-mb", "16"});
  for (std::string command : {"mkdir -p o && head -c 40000000 /dev/zero > $NUBO_WORK/fill && sleep 600",
                              "mkdir -p o && head -c 40000000 /dev/zero > o/fill"}) {
    std::string dir = tmp.sub("filler" + std::to_string(command.size()));
    writeFile(dir + "/nubo.json", R"({"runtime": "static", "build": {"command": ")" + command + R"(", "output": "o"}})");
    auto start = std::chrono::steady_clock::now();
    auto r = server.nubo({"deploy", dir, "--app", "filler"});
    EXPECT_NE(r.exit_code, 0) << r.out << r.err;
    EXPECT_NE(r.err.find("more than 16 MB to its output, scratch and cache folders"), std::string::npos) << r.err;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(30));
  }
  EXPECT_FALSE(std::filesystem::exists(server.dataDir() + "/builds") &&
               !std::filesystem::is_empty(server.dataDir() + "/builds"));
}

// A build that keeps getting interrupted (it crashes the server, say) is
// not started again forever: after three starts it is FAILED. The CLI that
// lost the server mid-build said what would happen.
TEST(EscapeBuildTest, ABuildInterruptedThreeTimesIsFailedNotRetried) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string dir = tmp.sub("loop");
  writeFile(dir + "/nubo.json", R"({"runtime": "static", "build": {"command": "echo builder-started; sleep 600", "output": "o"}})");
  ProcResult cli;
  std::thread deployer([&] { cli = server.nubo({"deploy", dir, "--app", "loop"}); });
  std::string id;
  for (int round = 0; round < 3; ++round) {
    // The state stays BUILDING across a restart: wait for this round's
    // builder to have started (its attempt counted), not for the state.
    bool building = waitFor([&] {
      std::string state;
      id = newestDeployment(server, "loop", &state);
      if (state != "BUILDING") return false;
      std::string log = server.nubo({"build-logs", id}).out;
      size_t starts = 0;
      const std::string line = "| builder-started\n";  // its output, not the command echoed
      for (size_t at = log.find(line); at != std::string::npos; at = log.find(line, at + 1)) {
        ++starts;
      }
      return starts == static_cast<size_t>(round) + 1;
    }, std::chrono::seconds(20));
    ASSERT_TRUE(building) << "round " << round;
    server.stop(SIGKILL);
    server.start();
  }
  deployer.join();
  EXPECT_EQ(cli.exit_code, 12) << cli.err;
  EXPECT_NE(cli.err.find("when the server is back its build starts over"), std::string::npos) << cli.err;
  EXPECT_NE(cli.err.find("once it is READY, production moves to it"), std::string::npos) << cli.err;
  auto d = parseJson(server.control("GET", "/v1/deployments/" + id).body, "deployment");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["state"], "FAILED") << d->dump();
  EXPECT_NE((*d)["error"].get<std::string>().find("interrupted 3 times"), std::string::npos) << d->dump();
  EXPECT_NE((*d)["error"].get<std::string>().find("nubo redeploy"), std::string::npos) << d->dump();
}

// Removing an app stops its running build, frees the build slot, and takes
// the app's build folders and cache with it.
TEST(EscapeBuildTest, RemovingAnAppStopsItsBuildAndRemovesItsCache) {
  TempDir tmp;
  NuboServer server(tmp, {"--build-concurrency", "1"});
  std::string dir = tmp.sub("stuck");
  writeFile(dir + "/nubo.json", R"({"runtime": "static", "build": {
      "command": "echo cached > $NUBO_CACHE/mark; sleep 600", "output": "o"}})");
  std::thread deployer([&] { server.nubo({"deploy", dir, "--app", "stuck"}); });
  std::string id;
  ASSERT_TRUE(waitFor([&] {
    std::string state;
    id = newestDeployment(server, "stuck", &state);
    return state == "BUILDING" && std::filesystem::exists(server.dataDir() + "/build-cache/stuck/mark");
  }, std::chrono::seconds(20)));
  ASSERT_EQ(server.nubo({"apps", "rm", "stuck"}).exit_code, 0);
  deployer.join();  // its event stream ends with the app
  // The one build slot is free again: another app builds at once.
  std::string next = tmp.sub("next");
  writeFile(next + "/nubo.json", R"({"runtime": "static", "build": {
      "command": "mkdir -p o && echo next > o/index.html", "output": "o"}})");
  auto r = server.nubo({"deploy", next, "--app", "next"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(server.get("/next/").body, "next\n");
  EXPECT_TRUE(waitFor([&] {
    return !std::filesystem::exists(server.dataDir() + "/build-cache/stuck") &&
           !std::filesystem::exists(server.dataDir() + "/builds/" + id);
  }));
}

// Where builds and networked functions would share the host's network
// namespace (--sandbox-network=host, or no egress network to be had), they
// could reach the control API and bind host ports: --sandbox=strict
// refuses them, and the default mode says so at start-up. With egress
// networks strict mode takes them.
TEST(EscapeBuildTest, StrictModeRefusesWhatWouldShareTheHostNetwork) {
  TempDir tmp;
  NuboServer lenient(tmp, {"--sandbox-network=host"}, "lenient");
  EXPECT_NE(lenient.log().find("share the host's network namespace"), std::string::npos) << lenient.log();
  NuboServer server(tmp, {"--sandbox=strict", "--sandbox-network=host"}, "strict");
  std::string built = tmp.sub("built");
  writeFile(built + "/nubo.json", R"({"runtime": "static", "build": {"command": "true", "output": "."}})");
  auto r = server.nubo({"deploy", built, "--app", "built"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("--sandbox=strict does not allow"), std::string::npos) << r.err;
  std::string net = tmp.sub("net");
  writeFile(net + "/index.js", "module.exports = (req, res) => res.end('x')");
  writeFile(net + "/nubo.json", R"({"permissions": {"network": true}})");
  r = server.nubo({"deploy", net, "--app", "net"});
  EXPECT_EQ(r.exit_code, 6) << r.err;
  EXPECT_NE(r.err.find("permissions.network"), std::string::npos) << r.err;
  if (::geteuid() == 0) {
    NuboServer isolated(tmp, {"--sandbox=strict"}, "isolated");
    r = isolated.nubo({"deploy", net, "--app", "net"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(isolated.get("/net/").body, "x");
  }
  std::string plain = tmp.sub("plain");
  writeFile(plain + "/index.js", "module.exports = (req, res) => res.end('isolated')");
  ASSERT_EQ(server.nubo({"deploy", plain, "--app", "plain"}).exit_code, 0);
  EXPECT_EQ(server.get("/plain/").body, "isolated");
}

}  // namespace
}  // namespace nubo::testing_util
