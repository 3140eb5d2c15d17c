// What one tenant's uploads can do to other tenants' apps and to the
// server: crafted trees sent straight to the control API of a real
// `nubo serve`.
#include <gtest/gtest.h>

#include "blob/tree.h"
#include "common/sha256.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

class EscapeDeployTest : public SharedServerTest {
 protected:
  // Uploads a blob; its hash.
  std::string putBlob(const std::string& bytes) {
    std::string h = sha256Hex(bytes);
    auto r = server_->control("PUT", "/v1/blobs/" + h, bytes);
    EXPECT_EQ(r.status, 201) << r.body;
    return h;
  }
  // Uploads a tree of `entries`; its hash.
  std::string putTree(std::vector<blob::TreeEntry> entries) {
    blob::Tree t;
    t.entries = std::move(entries);
    auto encoded = blob::encodeTree(std::move(t));
    EXPECT_TRUE(encoded.ok()) << encoded.status().toString();
    std::string h = sha256Hex(*encoded);
    auto r = server_->control("PUT", "/v1/trees/" + h, *encoded);
    EXPECT_EQ(r.status, 201) << r.body;
    return h;
  }
  cli::HttpResponse createDeployment(const std::string& app, const std::string& root) {
    return server_->control("POST", "/v1/apps/" + app + "/deployments",
                            "{\"root\": \"" + root + "\", \"manifest\": {\"runtime\": \"node\"}}");
  }
};

// A tree may name one subtree many times: 12 levels of "twice the level
// below" over a 1 MB file is 4 GiB and 4,096 files for every instance.
TEST_F(EscapeDeployTest, ATreeThatExpandsPastTheLimitsIsRefusedAtCreation) {
  std::string mb = putBlob(std::string(1 << 20, 'm'));
  std::string level = putTree({{"f", blob::EntryKind::kFile, 1 << 20, mb}});
  uint64_t bytes = 1 << 20;
  for (int i = 0; i < 12; ++i) {
    level = putTree({{"a", blob::EntryKind::kDir, bytes, level}, {"b", blob::EntryKind::kDir, bytes, level}});
    bytes *= 2;
  }
  std::string code = "module.exports = (req, res) => res.end('hi')";
  std::string root = putTree({{"index.js", blob::EntryKind::kFile, code.size(), putBlob(code)},
                              {"x", blob::EntryKind::kDir, bytes, level}});
  auto r = createDeployment("expander", root);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("4097 files"), std::string::npos) << r.body;
  EXPECT_NE(r.body.find("--max-deployment-mb"), std::string::npos) << r.body;
}

// ext4 allows 65,000 links to one inode. A deployment naming the empty
// file 65,001 times once used them all up on the shared blob, and every
// other app with an empty file (.gitkeep, __init__.py) then failed with
// "Too many links", even after the attacker was removed.
TEST_F(EscapeDeployTest, OneAppUsingUpTheLinkLimitBreaksNoOtherApp) {
  std::string empty = putBlob("");
  std::string code = "module.exports = (req, res) => res.end('up')";
  std::vector<blob::TreeEntry> many = {{"index.js", blob::EntryKind::kFile, code.size(), putBlob(code)}};
  for (int i = 0; i < 65001; ++i) many.push_back({"e" + std::to_string(i), blob::EntryKind::kFile, 0, empty});
  auto r = createDeployment("linker", putTree(std::move(many)));
  ASSERT_EQ(r.status, 201) << r.body;
  EXPECT_EQ(server_->get("/linker/").body, "up");  // its own files past the limit are copies

  auto victim = deployApp("victim", {{"index.js", "module.exports = (req, res) => res.end('fine')"},
                                     {".gitkeep", ""}});
  EXPECT_EQ(server_->get("/victim/").body, "fine");
  ASSERT_EQ(server_->nubo({"apps", "rm", "linker"}).exit_code, 0);
  EXPECT_EQ(server_->get("/victim/").body, "fine");
}

// Identical files of two apps were one inode: its link count and change
// time told one app what the other deployed.
TEST_F(EscapeDeployTest, AnAppCannotSeeWhetherAnotherHasTheSameFile) {
  const char* code = R"(const fs = require('fs'), path = require('path');
    module.exports = (req, res) => res.end(String(fs.statSync(path.join(__dirname, 'common.txt')).nlink)))";
  deployApp("first", {{"index.js", code}, {"common.txt", "the same bytes in both apps\n"}});
  EXPECT_EQ(server_->get("/first/").body, "2");  // the app's copy and its one instance
  deployApp("second", {{"index.js", code}, {"common.txt", "the same bytes in both apps\n"}});
  EXPECT_EQ(server_->get("/second/").body, "2");
  EXPECT_EQ(server_->get("/first/").body, "2");
}

// Blobs no deployment needs are collected; what a deploy in progress has
// uploaded or was told is stored is kept for the grace period, and nothing
// a deployment needs ever goes.
TEST(BlobGcTest, UnneededBlobsGoAndEverythingADeploymentNeedsStays) {
  TempDir tmp;
  NuboServer server(tmp);
  auto blobPath = [&](const std::string& bytes) {
    std::string h = sha256Hex(bytes);
    return server.dataDir() + "/blobs/" + h.substr(0, 2) + "/" + h;
  };
  std::string old_dir = tmp.sub("old"), keep_dir = tmp.sub("keep");
  writeFile(old_dir + "/index.html", "only the old app has this\n");
  writeFile(keep_dir + "/index.html", "this one stays\n");
  writeFile(keep_dir + "/shared.txt", "both apps have this\n");
  writeFile(old_dir + "/shared.txt", "both apps have this\n");
  server.deploy(old_dir, {"--app", "old"});
  server.deploy(keep_dir, {"--app", "keep"});
  std::string pending = "uploaded by a deploy still in progress\n";
  ASSERT_EQ(server.control("PUT", "/v1/blobs/" + sha256Hex(pending), pending).status, 201);
  ASSERT_EQ(server.nubo({"apps", "rm", "old"}).exit_code, 0);

  // Within the grace period nothing unneeded goes.
  auto r = server.nubo({"gc", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ((*parseJson(r.out, "gc"))["removed"], 0) << r.out;
  EXPECT_TRUE(std::filesystem::exists(blobPath(pending)));

  r = server.nubo({"gc", "--grace-s", "0", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = parseJson(r.out, "gc");
  ASSERT_TRUE(report.ok()) << r.out;
  EXPECT_EQ((*report)["removed"], 3) << r.out;  // the old app's page and root tree, and the pending upload
  EXPECT_FALSE(std::filesystem::exists(blobPath("only the old app has this\n")));
  EXPECT_FALSE(std::filesystem::exists(blobPath(pending)));
  EXPECT_TRUE(std::filesystem::exists(blobPath("both apps have this\n")));
  EXPECT_EQ(server.get("/keep/").body, "this one stays\n");
  EXPECT_EQ(server.get("/keep/shared.txt").body, "both apps have this\n");
  // The old app deploys again: what went is uploaded again.
  Json again = server.deploy(old_dir, {"--app", "old"});
  EXPECT_GE(again["uploaded_files"].get<int>(), 1) << again.dump();
  EXPECT_EQ(server.get("/old/").body, "only the old app has this\n");
}

}  // namespace
}  // namespace nubo::testing_util
