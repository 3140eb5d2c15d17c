// The escape attempts against an unprivileged install: `nubo serve` as
// uid 65534, so instances run in user namespaces and, without delegated
// cgroups, their limits come from rlimits and tmpfs options instead.
#include <gtest/gtest.h>

#include <sstream>

#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class EscapeUnprivilegedTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    server_ = new NuboServer(*tmp_, {}, "data", /*unprivileged=*/true);
  }
  static void TearDownTestSuite() {
    delete server_;
    delete tmp_;
  }
  Json deployApp(const std::string& name, const std::map<std::string, std::string>& files) {
    std::string dir = tmp_->sub("apps/" + name);
    for (const auto& [path, content] : files) writeFile(dir + "/" + path, content);
    return server_->deploy(dir, {"--app", name});
  }
  static inline TempDir* tmp_ = nullptr;
  static inline NuboServer* server_ = nullptr;
};

TEST_F(EscapeUnprivilegedTest, TheServerRunsUnprivilegedAndSaysWhatIsMissing) {
  std::string status = slurp("/proc/" + std::to_string(server_->pid()) + "/status");
  EXPECT_NE(status.find("Uid:\t65534"), std::string::npos) << status.substr(0, 400);
  // A non-root install names the layers it lacks (typically the cgroups).
  std::string log = server_->log();
  EXPECT_TRUE(log.find("every isolation layer is active") != std::string::npos ||
              log.find("running without") != std::string::npos)
      << log;
}

// Without cgroups a fork bomb once reached 1,500 processes, starving the
// server, which shares the uid.
TEST_F(EscapeUnprivilegedTest, AForkBombIsContained) {
  std::string dir = tmp_->sub("apps/bomb");
  std::filesystem::create_directories(dir);
  std::filesystem::copy_file("/bin/sleep", dir + "/sleep", std::filesystem::copy_options::overwrite_existing);
  ::chmod((dir + "/sleep").c_str(), 0755);
  deployApp("bomb", {{"index.js", R"(import { spawn } from 'node:child_process';
    export default { async fetch() {
      let started = 0, failed = 0;
      const kids = [];
      for (let i = 0; i < 600; i++) {
        const k = spawn('/app/sleep', ['30'], { stdio: 'ignore' });
        await new Promise((resolve) => { k.once('spawn', () => { started++; resolve(); }); k.once('error', () => { failed++; resolve(); }); });
        kids.push(k);
      }
      for (const k of kids) k.kill('SIGKILL');
      return Response.json({ started, failed });
    } })"}, {"nubo.json", R"({"limits": {"timeout_ms": 60000}})"}});
  auto r = server_->get("/bomb/");
  if (r.status == 200) {
    auto j = parseJson(r.body, "bomb");
    ASSERT_TRUE(j.ok()) << r.body;
    EXPECT_LT((*j)["started"].get<int>(), 300) << r.body;
    EXPECT_GT((*j)["failed"].get<int>(), 0) << r.body;
  } else {
    EXPECT_GE(r.status, 500);
  }
  EXPECT_EQ(server_->get("/_nubo/healthz").status, 200);
}

// 700 MB was once touched under a 256 MB limit.
TEST_F(EscapeUnprivilegedTest, MemoryStaysNearTheLimit) {
  deployApp("hog", {{"index.js", R"(export default { fetch() {
      const keep = [];
      try { for (let i = 0; i < 70; i++) keep.push(Buffer.alloc(10 << 20, 1)); } catch (e) {}
      return new Response(String(keep.length * 10));
    } })"}, {"nubo.json", R"({"limits": {"memory_mb": 256}})"}});
  auto r = server_->get("/hog/");
  if (r.status == 200) {
    EXPECT_LT(std::stoi(r.body), 400) << "MB held under a 256 MB limit";
  } else {
    EXPECT_GE(r.status, 500) << r.body;  // killed for it: contained too
  }
  EXPECT_EQ(server_->get("/_nubo/healthz").status, 200);
}

// In a user namespace the instance is root of its own files: /dev must
// still be read-only, and /tmp bounded in inodes (1.5 M empty files once
// pinned 1.24 GB of kernel memory).
TEST_F(EscapeUnprivilegedTest, DevIsReadOnlyAndTmpHasFewInodes) {
  deployApp("filler", {{"index.js", R"(const fs = require('fs');
    module.exports = (req, res) => {
      let dev = 'written';
      try { fs.writeFileSync('/dev/planted', 'x'); } catch (e) { dev = e.code; }
      let made = 0, why = 'none';
      for (; made < 200000; made++) {
        try { fs.writeFileSync('/tmp/f' + made, ''); } catch (e) { why = e.code; break; }
      }
      res.end(dev + ' ' + why + ' ' + made);
    })"}});
  std::string got = server_->get("/filler/").body;
  std::istringstream in(got);
  std::string dev, why;
  int made = 0;
  in >> dev >> why >> made;
  EXPECT_TRUE(dev == "EROFS" || dev == "EACCES") << got;
  EXPECT_EQ(why, "ENOSPC") << got;
  EXPECT_LE(made, 4096) << got;
}

TEST_F(EscapeUnprivilegedTest, TheDataDirectoryAndTokensAreInvisible) {
  deployApp("snoop", {{"index.js", R"(const fs = require('fs');
    module.exports = (req, res) => {
      const seen = [];
      for (const p of [process.argv[0], '/proc/1/environ', ')" + server_->dataDir() + R"(/admin.token', '/etc/shadow']) {
        try { fs.readFileSync(p); seen.push(p); } catch (e) {}
      }
      res.end(JSON.stringify(seen));
    })"}});
  std::string got = server_->get("/snoop/").body;
  EXPECT_EQ(got.find("admin.token"), std::string::npos) << got;
  EXPECT_EQ(got.find("shadow"), std::string::npos) << got;
}

}  // namespace
}  // namespace nubo::testing_util
