#include "blob/tree.h"

#include <gtest/gtest.h>

#include "blob/local_blob_store.h"
#include "common/sha256.h"
#include "test_util.h"

namespace nubo::blob {
namespace {

TreeEntry file(std::string name, std::string_view content) {
  return {std::move(name), EntryKind::kFile, content.size(), sha256Hex(content)};
}

TEST(TreeTest, EncodingIsCanonicalAndRoundTrips) {
  Tree t;
  t.entries = {file("b.txt", "bbb"), file("a.txt", "a"), {"dir", EntryKind::kDir, 7, sha256Hex("x")}};
  auto enc = encodeTree(t);
  ASSERT_TRUE(enc.ok()) << enc.status().toString();
  EXPECT_EQ(enc->substr(0, 12), "nubo-tree 1\n");
  auto dec = decodeTree(*enc);
  ASSERT_TRUE(dec.ok()) << dec.status().toString();
  ASSERT_EQ(dec->entries.size(), 3u);
  EXPECT_EQ(dec->entries[0].name, "a.txt");
  EXPECT_EQ(dec->entries[2].name, "dir");
  EXPECT_EQ(dec->totalBytes(), 11u);
  // Order of input does not change the hash.
  Tree t2;
  t2.entries = {dec->entries[2], dec->entries[0], dec->entries[1]};
  EXPECT_EQ(sha256Hex(*encodeTree(t2)), sha256Hex(*enc));
}

TEST(TreeTest, NamesWithSpacesAndUnicodeAreFine) {
  Tree t;
  t.entries = {file("my file ü.txt", "x")};
  auto dec = decodeTree(*encodeTree(t));
  ASSERT_TRUE(dec.ok());
  EXPECT_EQ(dec->entries[0].name, "my file ü.txt");
}

TEST(TreeTest, BadNamesAreRejectedNamingThePath) {
  for (std::string bad : {std::string(".."), std::string("."), std::string("a/b"), std::string(""),
                          std::string("a\nb"), std::string("nul\0x", 5), std::string("tab\tname")}) {
    Status s = validateEntryName(bad, "site/" + bad);
    EXPECT_EQ(s.code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("site/"), std::string::npos) << s.message();
    Tree t;
    t.entries = {file(bad, "x")};
    EXPECT_FALSE(encodeTree(t).ok()) << bad;
  }
  Tree dup;
  dup.entries = {file("a", "x"), file("a", "y")};
  EXPECT_EQ(encodeTree(dup).status().code(), Code::kInvalidArgument);
}

TEST(TreeTest, NonCanonicalEncodingsAreRejected) {
  std::string h = sha256Hex("x");
  EXPECT_FALSE(decodeTree("").ok());
  EXPECT_FALSE(decodeTree("nubo-tree 2\n").ok());
  EXPECT_TRUE(decodeTree("nubo-tree 1\n").ok());  // empty dir
  EXPECT_FALSE(decodeTree("nubo-tree 1\nfile " + h + " 1\tb\nfile " + h + " 1\ta\n").ok());  // unsorted
  EXPECT_FALSE(decodeTree("nubo-tree 1\nfile " + h + " 01\ta\n").ok());  // leading zero
  EXPECT_FALSE(decodeTree("nubo-tree 1\nlink " + h + " 1\ta\n").ok());
  EXPECT_FALSE(decodeTree("nubo-tree 1\nfile " + h + " 1\t..\n").ok());
  EXPECT_FALSE(decodeTree("nubo-tree 1\nfile " + h + " 1\ta").ok());  // no newline
  EXPECT_FALSE(decodeTree("nubo-tree 1\nfile " + h.substr(1) + "  1\ta\n").ok());
}

TEST(TreeTest, CheckChildrenRequiresCompleteConsistentSubtrees) {
  testing_util::TempDir dir;
  auto store = std::move(LocalBlobStore::create(dir.sub("b"))).value();
  Tree sub;
  sub.entries = {file("x.txt", "xx")};
  std::string sub_bytes = *encodeTree(sub);
  std::string sub_hash = sha256Hex(sub_bytes);
  Tree root;
  root.entries = {file("a.txt", "a"), {"sub", EntryKind::kDir, 2, sub_hash}};

  Status s = checkChildren(*store, root);
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("2 child object"), std::string::npos) << s.message();

  ASSERT_TRUE(store->put(sha256Hex("a"), "a").ok());
  ASSERT_TRUE(store->put(sub_hash, sub_bytes).ok());
  EXPECT_TRUE(checkChildren(*store, root).ok());

  root.entries[1].size = 3;  // lies about the subtree's size
  EXPECT_EQ(checkChildren(*store, root).code(), Code::kInvalidArgument);
  root.entries[1].size = 2;
  root.entries[0].size = 5;  // lies about the file's size
  EXPECT_EQ(checkChildren(*store, root).code(), Code::kInvalidArgument);
}

TEST(TreeTest, WalkVisitsEveryFileWithItsPath) {
  testing_util::TempDir dir;
  auto store = std::move(LocalBlobStore::create(dir.sub("b"))).value();
  Tree inner;
  inner.entries = {file("deep.txt", "d")};
  std::string inner_bytes = *encodeTree(inner);
  ASSERT_TRUE(store->put(sha256Hex(inner_bytes), inner_bytes).ok());
  Tree root;
  root.entries = {file("index.html", "hi"), {"css", EntryKind::kDir, 1, sha256Hex(inner_bytes)}};
  std::string root_bytes = *encodeTree(root);
  ASSERT_TRUE(store->put(sha256Hex(root_bytes), root_bytes).ok());

  std::map<std::string, uint64_t> seen;
  ASSERT_TRUE(walkTree(sha256Hex(root_bytes), loaderFor(*store), [&](FlatFile&& f) { seen[f.path] = f.size; }).ok());
  EXPECT_EQ(seen, (std::map<std::string, uint64_t>{{"css/deep.txt", 1}, {"index.html", 2}}));
}

}  // namespace
}  // namespace nubo::blob
