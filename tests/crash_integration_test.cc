// kill -9 of `nubo serve` in the middle of a deploy loses no committed
// deployment and leaves nothing half-written visible.
#include <dirent.h>
#include <gtest/gtest.h>

#include "common/sha256.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

// Every blob file under `root` (excluding tmp/).
std::vector<std::string> blobFiles(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (it->is_regular_file() && it->path().parent_path().filename() != "tmp") out.push_back(it->path().string());
  }
  return out;
}

// `nubo ARGS...` against `server` as a child process (output discarded); its pid.
pid_t deployInBackground(const NuboServer& server, const std::vector<std::string>& args) {
  std::vector<char*> argv = {const_cast<char*>(NUBO_BINARY)};
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setenv("NUBO_SERVER", server.controlUrl().c_str(), 1);
    ::setenv("NUBO_TOKEN", server.token().c_str(), 1);
    int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execv(NUBO_BINARY, argv.data());
    ::_exit(127);
  }
  return pid;
}

TEST(CrashTest, KillDashNineMidDeployLosesNothingCommitted) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string small = tmp.sub("small");
  writeFile(small + "/index.html", "committed before the crash\n");
  Json first = server.deploy(small, {"--app", "keeper"});
  std::string first_id = first["deployment"];

  // A site big enough that its upload is in flight when the server dies.
  std::string big = tmp.sub("big");
  for (int i = 0; i < 1500; ++i) {
    writeFile(big + "/d" + std::to_string(i % 30) + "/f" + std::to_string(i) + ".txt",
              std::string(2048, static_cast<char>('a' + i % 26)) + std::to_string(i));
  }
  std::string blobs = server.dataDir() + "/blobs";
  size_t before = blobFiles(blobs).size();

  pid_t deployer = deployInBackground(server, {"deploy", big, "--app", "victim", "--parallel", "4"});
  ASSERT_TRUE(waitFor([&] { return blobFiles(blobs).size() >= before + 200; }, std::chrono::seconds(60)))
      << "the deploy never got going";
  EXPECT_EQ(server.stop(SIGKILL), 128 + SIGKILL);
  int status = 0;
  ::waitpid(deployer, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << "the deploy should fail when the server dies";

  server.start();
  // The committed deployment is intact and serving, by alias and by id.
  EXPECT_EQ(server.get("/keeper/").body, "committed before the crash\n");
  EXPECT_EQ(server.get("/", {"Host: " + first_id + "--keeper.localhost"}).body, "committed before the crash\n");
  // The interrupted app has no deployment at all.
  auto r = server.control("GET", "/v1/apps/victim/deployments");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(server.get("/victim/").status, 404);
  // Every stored blob is whole: its bytes hash to its name.
  auto files = blobFiles(blobs);
  EXPECT_GT(files.size(), before);
  for (const auto& f : files) {
    std::string name = std::filesystem::path(f).filename().string();
    if (!isSha256Hex(name)) continue;
    EXPECT_EQ(sha256Hex(slurp(f)), name) << f << " is corrupt";
  }
  EXPECT_TRUE(std::filesystem::is_empty(blobs + "/tmp"));

  // Deploying again resumes: what was stored is not sent twice.
  Json again = server.deploy(big, {"--app", "victim"});
  EXPECT_EQ(again["state"], "READY");
  EXPECT_EQ(again["files"], 1500);
  EXPECT_LT(again["uploaded_files"].get<int>(), 1500 - 150);
  EXPECT_EQ(server.get("/victim/d7/f7.txt").body, std::string(2048, 'h') + "7");
}

// A deployment whose start was being checked when the server died is
// checked again at the next start, and then goes live as it was deployed.
TEST(CrashTest, KillDashNineDuringAStartCheckChecksItAgain) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string dir = tmp.sub("slowhealth");
  writeFile(dir + "/nubo.json", R"({"entry": "server.js", "health": {"path": "/healthz"}})");
  writeFile(dir + "/server.js", "module.exports = (req, res) => req.url === '/healthz' ? "
                                "setTimeout(() => res.end('ok'), 1500) : res.end('started');");
  pid_t deployer = deployInBackground(server, {"deploy", dir, "--app", "slowhealth"});
  std::string id;
  ASSERT_TRUE(waitFor([&] {
    auto r = server.control("GET", "/v1/apps/slowhealth/deployments");
    auto j = parseJson(r.body, "list");
    if (r.status != 200 || !j.ok() || (*j)["deployments"].empty()) return false;
    id = (*j)["deployments"][0]["id"];
    return (*j)["deployments"][0]["state"] == "STARTING";
  })) << "the deployment never was STARTING";
  EXPECT_EQ(server.stop(SIGKILL), 128 + SIGKILL);
  ::waitpid(deployer, nullptr, 0);

  server.start();
  ASSERT_TRUE(waitFor([&] { return server.get("/slowhealth/").body == "started"; }, std::chrono::seconds(20)));
  auto d = parseJson(server.control("GET", "/v1/deployments/" + id).body, "deployment");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ((*d)["state"], "READY");
  EXPECT_NE(server.nubo({"build-logs", id}).out.find("checked again"), std::string::npos);
}

TEST(CrashTest, SlowClientsGet408AndTheServerCarriesOn) {
  TempDir tmp;
  NuboServer server(tmp, {"--header-timeout-ms", "300"});
  // Send half a request line and stall.
  auto url = server.dataUrl();
  int port = std::stoi(url.substr(url.rfind(':') + 1));
  int fd = connectLoopback(port, 5);
  ASSERT_GE(fd, 0);
  std::string partial = "GET /x HTTP/1.1\r\nHost: a";
  ASSERT_EQ(::write(fd, partial.data(), partial.size()), static_cast<ssize_t>(partial.size()));
  char buf[512];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buf, static_cast<size_t>(n)).substr(0, 12), "HTTP/1.1 408");
  EXPECT_EQ(server.get("/_nubo/healthz").status, 200);
}

TEST(ShutdownTest, SigtermLetsInFlightDownloadsFinish) {
  TempDir tmp;
  NuboServer server(tmp);
  std::string big(16 << 20, 'z');
  writeFile(tmp.sub("site/big.bin"), big);
  server.deploy(tmp.sub("site"), {"--app", "dl"});

  // A slow reader: about two seconds for the whole file.
  std::string out = tmp.sub("download");
  pid_t curl = ::fork();
  if (curl == 0) {
    std::string url = server.dataUrl() + "/dl/big.bin";
    ::execlp("curl", "curl", "-sf", "--limit-rate", "8M", "-o", out.c_str(), url.c_str(), nullptr);
    ::_exit(127);
  }
  ASSERT_TRUE(waitFor([&] {
    std::error_code ec;
    return std::filesystem::exists(out) && std::filesystem::file_size(out, ec) > 0;
  }));
  EXPECT_EQ(server.stop(SIGTERM), 0);  // returns once the download is done
  int status = 0;
  ::waitpid(curl, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(std::filesystem::file_size(out), big.size());
}

}  // namespace
}  // namespace nubo::testing_util
