#include "blob/directory.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "blob/local_blob_store.h"
#include "blob/tree.h"
#include "common/sha256.h"
#include "test_util.h"

namespace nubo::blob {
namespace {

class StoreDirectoryTest : public testing::Test {
 protected:
  void SetUp() override { blobs_ = std::move(LocalBlobStore::create(tmp_.sub("blobs"))).value(); }

  // Every file of the stored tree: path -> (content, executable).
  std::map<std::string, std::pair<std::string, bool>> files(const std::string& root) {
    std::map<std::string, std::pair<std::string, bool>> out;
    Status s = walkTree(root, loaderFor(*blobs_), [&](FlatFile&& f) {
      out[f.path] = {blobs_->get(f.hash).value(), f.kind == EntryKind::kExecutable};
    });
    EXPECT_TRUE(s.ok()) << s.toString();
    return out;
  }

  testing_util::TempDir tmp_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_F(StoreDirectoryTest, StoresFilesFoldersAndTheExecutableBit) {
  std::string out = tmp_.sub("out");
  testing_util::writeFile(out + "/index.js", "hi");
  testing_util::writeFile(out + "/lib/a.js", "a");
  testing_util::writeFile(out + "/bin/run", "#!/bin/sh\n");
  ::chmod((out + "/bin/run").c_str(), 0755);
  ::mkdir((out + "/empty").c_str(), 0755);
  auto r = storeDirectory(*blobs_, out, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().toString();
  EXPECT_EQ(r->files, 3u);
  EXPECT_EQ(r->bytes, 2u + 1u + 10u);
  EXPECT_EQ(r->stored_files, 3u);
  auto f = files(r->root);
  ASSERT_EQ(f.size(), 3u);
  EXPECT_EQ(f["index.js"], std::make_pair(std::string("hi"), false));
  EXPECT_EQ(f["lib/a.js"], std::make_pair(std::string("a"), false));
  EXPECT_TRUE(f["bin/run"].second);

  // The same output again: the same tree, nothing new stored.
  auto again = storeDirectory(*blobs_, out, nullptr);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->root, r->root);
  EXPECT_EQ(again->stored_files, 0u);
}

TEST_F(StoreDirectoryTest, LinksInsideBecomeCopiesAndOthersAreReported) {
  std::string out = tmp_.sub("out");
  testing_util::writeFile(out + "/node_modules/pkg/cli.js", "cli");
  ::mkdir((out + "/node_modules/.bin").c_str(), 0755);
  ASSERT_EQ(::symlink("../pkg/cli.js", (out + "/node_modules/.bin/pkg").c_str()), 0);
  ASSERT_EQ(::symlink("/etc/hostname", (out + "/outside").c_str()), 0);
  ASSERT_EQ(::symlink("missing", (out + "/dangling").c_str()), 0);
  std::map<std::string, std::string> skipped;
  auto r = storeDirectory(*blobs_, out, [&](std::string_view path, std::string_view why) {
    skipped[std::string(path)] = std::string(why);
  });
  ASSERT_TRUE(r.ok()) << r.status().toString();
  auto f = files(r->root);
  EXPECT_EQ(f["node_modules/.bin/pkg"].first, "cli");
  EXPECT_EQ(f.count("outside"), 0u);
  ASSERT_EQ(skipped.size(), 2u);
  EXPECT_NE(skipped["outside"].find("out of the folder"), std::string::npos);
  EXPECT_NE(skipped["dangling"].find("to nothing"), std::string::npos);
}

TEST_F(StoreDirectoryTest, AnEmptyOutputHasNoRootAndAMissingOneIsNotFound) {
  ASSERT_EQ(::mkdir(tmp_.sub("nothing").c_str(), 0755), 0);
  auto empty = storeDirectory(*blobs_, tmp_.sub("nothing"), nullptr);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->root.empty());
  auto missing = storeDirectory(*blobs_, tmp_.path() + "/no-such", nullptr);
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
}

TEST_F(StoreDirectoryTest, AFolderOverItsLimitsFailsBeforeTheFileThatCrossesThemIsRead) {
  std::string out = tmp_.sub("out");
  testing_util::writeFile(out + "/a.txt", "aaaa");
  // 64 GiB that take no disk: refused from its size alone.
  std::string huge = out + "/huge";
  testing_util::writeFile(huge, "");
  ASSERT_EQ(::truncate(huge.c_str(), 64ll << 30), 0);
  auto r = storeDirectory(*blobs_, out, nullptr, StoreLimits{100, 1 << 20});
  ASSERT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("more than 1048576 bytes"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("huge"), std::string::npos);
  ::unlink(huge.c_str());
  for (int i = 0; i < 5; ++i) testing_util::writeFile(out + "/f" + std::to_string(i), std::to_string(i));
  r = storeDirectory(*blobs_, out, nullptr, StoreLimits{3, 1 << 20});
  ASSERT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("more than 3 files"), std::string::npos) << r.status().message();
  EXPECT_TRUE(storeDirectory(*blobs_, out, nullptr, StoreLimits{6, 1 << 20}).ok());
}

}  // namespace
}  // namespace nubo::blob
