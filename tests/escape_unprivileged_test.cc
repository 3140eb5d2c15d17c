// The escape attempts against an unprivileged install: `nubo serve` as
// uid 65534, so instances run in user namespaces and, without delegated
// cgroups, their limits come from rlimits and tmpfs options instead.
#include <gtest/gtest.h>

#include "escape_attempts.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class EscapeUnprivilegedTest : public SharedServerTest {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new TempDir();
    server_ = new NuboServer(*tmp_, {}, "data", /*unprivileged=*/true);
  }
  DeployFn deployer() {
    return [this](const std::string& app, const auto& files) { return deployApp(app, files); };
  }
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
TEST_F(EscapeUnprivilegedTest, AForkBombIsContained) { tryForkBomb(*server_, tmp_->sub("apps/bomb"), deployer()); }

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
// still be read-only, and /tmp bounded in inodes.
TEST_F(EscapeUnprivilegedTest, DevIsReadOnlyAndTmpHasFewInodes) { tryFillingDevAndTmp(*server_, deployer()); }

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
