#include "cli/scanner.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>

#include "blob/tree.h"
#include "cli/ignore.h"
#include "common/sha256.h"
#include "integration_util.h"

namespace nubo::cli {
namespace {

using testing_util::writeFile;

TEST(GlobTest, GitignoreStylePatterns) {
  EXPECT_TRUE(globMatch("*.log", "debug.log"));
  EXPECT_FALSE(globMatch("*.log", "a/debug.log"));  // '*' stops at '/'
  EXPECT_TRUE(globMatch("**/x.txt", "x.txt"));
  EXPECT_TRUE(globMatch("**/x.txt", "a/b/x.txt"));
  EXPECT_TRUE(globMatch("a/**/b", "a/b"));
  EXPECT_TRUE(globMatch("a/**/b", "a/x/y/b"));
  EXPECT_TRUE(globMatch("a/**", "a/x/y"));
  EXPECT_TRUE(globMatch("f?le", "file"));
  EXPECT_FALSE(globMatch("f?le", "f/le"));
  EXPECT_TRUE(globMatch("[a-c]x", "bx"));
  EXPECT_FALSE(globMatch("[!a-c]x", "bx"));
  EXPECT_TRUE(globMatch("\\*lit", "*lit"));
}

TEST(IgnoreTest, RulesApplyAsInGitignore) {
  IgnoreRules r = IgnoreRules::parse(
      "# comment\n\n*.log\n!keep.log\nbuild/\n/only-root.txt\ndocs/*.md\nnode_modules\n");
  EXPECT_TRUE(r.ignored("x.log", false));
  EXPECT_TRUE(r.ignored("deep/x.log", false));
  EXPECT_FALSE(r.ignored("keep.log", false));
  EXPECT_TRUE(r.ignored("build", true));
  EXPECT_FALSE(r.ignored("build", false));  // "build/" matches directories only
  EXPECT_TRUE(r.ignored("only-root.txt", false));
  EXPECT_FALSE(r.ignored("sub/only-root.txt", false));
  EXPECT_TRUE(r.ignored("docs/a.md", false));
  EXPECT_FALSE(r.ignored("docs/sub/a.md", false));
  EXPECT_TRUE(r.ignored("a/node_modules", true));
  EXPECT_TRUE(r.ignored(".git", true));
  EXPECT_TRUE(r.ignored("sub/.nubo", true));
  EXPECT_FALSE(r.ignored("index.html", false));
}

TEST(ScannerTest, SnapshotIsAMerkleTreeOfTheFolder) {
  testing_util::TempDir dir;
  writeFile(dir.sub("p/index.html"), "hi");
  writeFile(dir.sub("p/a/b/c.txt"), "deep");
  writeFile(dir.sub("p/run.sh"), "#!/bin/sh\n");
  ::chmod(dir.sub("p/run.sh").c_str(), 0755);
  auto files = scan(dir.sub("p"), IgnoreRules());
  ASSERT_TRUE(files.ok()) << files.status().toString();
  ASSERT_EQ(files->size(), 3u);
  HashCache cache;
  ASSERT_TRUE(hash(dir.sub("p"), *files, cache, 0, nullptr).ok());
  auto snap = snapshot(*files);
  ASSERT_TRUE(snap.ok()) << snap.status().toString();
  EXPECT_EQ(snap->total_bytes, 2u + 4u + 10u);
  EXPECT_EQ(snap->trees.size(), 3u);  // root, a, a/b
  const TreeObject& root = snap->trees.at(snap->root);
  EXPECT_EQ(root.depth, 0);
  auto decoded = blob::decodeTree(root.bytes);
  ASSERT_TRUE(decoded.ok());
  ASSERT_EQ(decoded->entries.size(), 3u);
  EXPECT_EQ(decoded->entries[0].name, "a");
  EXPECT_EQ(decoded->entries[0].kind, blob::EntryKind::kDir);
  EXPECT_EQ(decoded->entries[0].size, 4u);
  EXPECT_EQ(decoded->entries[2].name, "run.sh");
  EXPECT_EQ(decoded->entries[2].kind, blob::EntryKind::kExecutable);
  EXPECT_EQ(sha256Hex(root.bytes), snap->root);

  // Same content elsewhere: same root hash. One byte changed: different.
  writeFile(dir.sub("q/index.html"), "hi");
  writeFile(dir.sub("q/a/b/c.txt"), "deep");
  writeFile(dir.sub("q/run.sh"), "#!/bin/sh\n");
  ::chmod(dir.sub("q/run.sh").c_str(), 0755);
  auto qf = scan(dir.sub("q"), IgnoreRules());
  ASSERT_TRUE(hash(dir.sub("q"), *qf, cache, 0, nullptr).ok());
  EXPECT_EQ(snapshot(*qf)->root, snap->root);
  writeFile(dir.sub("q/a/b/c.txt"), "deeP");
  qf = scan(dir.sub("q"), IgnoreRules());
  ASSERT_TRUE(hash(dir.sub("q"), *qf, cache, 0, nullptr).ok());
  auto changed = snapshot(*qf);
  EXPECT_NE(changed->root, snap->root);
}

// A link inside the folder is a copy of its target; one leading out of it,
// nowhere, or into a loop is refused with the path named.
TEST(ScannerTest, LinksInsideAreCopiesAndOthersAreRefusedNamingThePath) {
  testing_util::TempDir dir;
  writeFile(dir.sub("p/sub/ok.txt"), "x");
  writeFile(dir.sub("p/docs/a.md"), "a");
  std::filesystem::create_symlink("../sub/ok.txt", dir.sub("p/docs/ok-link.txt"));
  std::filesystem::create_symlink("docs", dir.sub("p/docs-link"));
  auto in = scan(dir.sub("p"), IgnoreRules());
  ASSERT_TRUE(in.ok()) << in.status().message();
  std::vector<std::string> paths;
  for (const auto& f : *in) paths.push_back(f.path);
  std::sort(paths.begin(), paths.end());
  EXPECT_EQ(paths, (std::vector<std::string>{"docs-link/a.md", "docs-link/ok-link.txt", "docs/a.md",
                                             "docs/ok-link.txt", "sub/ok.txt"}));

  writeFile(dir.sub("outside.txt"), "secret");
  std::filesystem::create_symlink("../../outside.txt", dir.sub("p/sub/link"));
  auto r = scan(dir.sub("p"), IgnoreRules());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("\"sub/link\" is a symbolic link to "), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find("outside the folder"), std::string::npos) << r.status().message();
  EXPECT_TRUE(scan(dir.sub("p"), IgnoreRules::parse("link\n")).ok());  // ignoring it is the fix

  writeFile(dir.sub("d/x"), "x");
  std::filesystem::create_symlink("missing", dir.sub("d/dangling"));
  r = scan(dir.sub("d"), IgnoreRules());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not exist"), std::string::npos) << r.status().message();

  writeFile(dir.sub("l/a/x"), "x");
  std::filesystem::create_symlink("..", dir.sub("l/a/up"));
  r = scan(dir.sub("l"), IgnoreRules());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("a loop"), std::string::npos) << r.status().message();

  writeFile(dir.sub("n/bad\nname"), "x");
  r = scan(dir.sub("n"), IgnoreRules());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("control characters"), std::string::npos);

  EXPECT_EQ(scan(dir.sub("missing"), IgnoreRules()).status().code(), Code::kNotFound);
}

TEST(HashCacheTest, UnchangedFilesAreNotReadAgain) {
  testing_util::TempDir dir;
  writeFile(dir.sub("p/a.txt"), "aaa");
  writeFile(dir.sub("p/b.txt"), "bbb");
  int64_t far_future = INT64_MAX;  // every file counts as old enough to cache
  auto files = scan(dir.sub("p"), IgnoreRules());
  HashCache cache;
  EXPECT_EQ(*hash(dir.sub("p"), *files, cache, far_future, nullptr), 2u);
  ASSERT_TRUE(cache.save(dir.sub("p/.nubo/hashcache")).ok());

  HashCache loaded = HashCache::load(dir.sub("p/.nubo/hashcache"));
  files = scan(dir.sub("p"), IgnoreRules());
  EXPECT_EQ(*hash(dir.sub("p"), *files, loaded, far_future, nullptr), 0u);
  EXPECT_EQ((*files)[0].hash, sha256Hex("aaa"));

  // A changed file (new size and mtime) is read again.
  writeFile(dir.sub("p/b.txt"), "bbbb");
  files = scan(dir.sub("p"), IgnoreRules());
  EXPECT_EQ(*hash(dir.sub("p"), *files, loaded, far_future, nullptr), 1u);
  EXPECT_EQ((*files)[1].hash, sha256Hex("bbbb"));

  // Files modified within the last second are not trusted to the cache.
  HashCache fresh;
  files = scan(dir.sub("p"), IgnoreRules());
  ASSERT_TRUE(hash(dir.sub("p"), *files, fresh, 0, nullptr).ok());
  ASSERT_TRUE(fresh.save(dir.sub("fresh")).ok());
  HashCache reread = HashCache::load(dir.sub("fresh"));
  EXPECT_FALSE(reread.lookup("a.txt", (*files)[0].key).has_value());

  // A corrupt cache is an empty cache.
  testing_util::writeFile(dir.sub("corrupt"), "nubo-hashcache 1\ngarbage\n");
  EXPECT_FALSE(HashCache::load(dir.sub("corrupt")).lookup("a.txt", (*files)[0].key).has_value());
}

}  // namespace
}  // namespace nubo::cli
