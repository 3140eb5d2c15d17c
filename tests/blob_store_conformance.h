// The BlobStore conformance suite. Every implementation instantiates it:
//   INSTANTIATE_TEST_SUITE_P(Local, BlobStoreConformance, testing::Values(&makeLocal));
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "blob/blob_store.h"
#include "common/sha256.h"

namespace nubo::blob {

using BlobStoreFactory = std::unique_ptr<BlobStore> (*)();

class BlobStoreConformance : public testing::TestWithParam<BlobStoreFactory> {
 protected:
  void SetUp() override { store_ = GetParam()(); }
  std::unique_ptr<BlobStore> store_;
};

TEST_P(BlobStoreConformance, PutThenGetReturnsTheBytes) {
  std::string bytes = "hello, blobs\n";
  std::string h = sha256Hex(bytes);
  EXPECT_FALSE(store_->has(h));
  ASSERT_TRUE(store_->put(h, bytes).ok());
  EXPECT_TRUE(store_->has(h));
  EXPECT_EQ(*store_->get(h), bytes);
  EXPECT_EQ(*store_->size(h), bytes.size());
  auto f = store_->open(h);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->size, bytes.size());
  std::string read(bytes.size(), '\0');
  EXPECT_EQ(::pread(f->fd.get(), read.data(), read.size(), 0), static_cast<ssize_t>(read.size()));
  EXPECT_EQ(read, bytes);
}

TEST_P(BlobStoreConformance, EmptyBlobIsABlob) {
  std::string h = sha256Hex("");
  ASSERT_TRUE(store_->put(h, "").ok());
  EXPECT_EQ(*store_->get(h), "");
}

TEST_P(BlobStoreConformance, WrongHashIsRejectedAndNothingStored) {
  std::string h = sha256Hex("the real bytes");
  Status s = store_->put(h, "other bytes");
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("nothing was stored"), std::string::npos);
  EXPECT_FALSE(store_->has(h));
  EXPECT_EQ(store_->get(h).status().code(), Code::kNotFound);
}

TEST_P(BlobStoreConformance, MalformedNamesAreRejected) {
  EXPECT_EQ(store_->put("../../etc/passwd", "x").code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->get("ABC").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->size(std::string(64, 'G')).status().code(), Code::kInvalidArgument);
}

TEST_P(BlobStoreConformance, PutIsIdempotentAndSafeConcurrently) {
  std::string bytes(100000, 'x');
  std::string h = sha256Hex(bytes);
  std::vector<std::thread> ts;
  std::vector<Status> results(8);
  for (int i = 0; i < 8; ++i) ts.emplace_back([&, i] { results[i] = store_->put(h, bytes); });
  for (auto& t : ts) t.join();
  for (auto& s : results) EXPECT_TRUE(s.ok()) << s.toString();
  EXPECT_EQ(*store_->get(h), bytes);
}

TEST_P(BlobStoreConformance, MissingBlobIsNotFound) {
  EXPECT_EQ(store_->open(sha256Hex("absent")).status().code(), Code::kNotFound);
}

TEST_P(BlobStoreConformance, AWriterStoresItsPiecesUnderTheirHashOnlyWhenCommitted) {
  std::string a(300000, 'a'), b = "tail";
  std::string h = sha256Hex(a + b);
  auto w = store_->writer();
  ASSERT_TRUE(w.ok()) << w.status().toString();
  ASSERT_TRUE((*w)->write(a).ok());
  ASSERT_TRUE((*w)->write(b).ok());
  EXPECT_EQ((*w)->size(), a.size() + b.size());
  EXPECT_FALSE(store_->has(h));  // nothing visible before the commit
  auto committed = (*w)->commit(h);
  ASSERT_TRUE(committed.ok()) << committed.status().toString();
  EXPECT_EQ(*committed, h);
  EXPECT_EQ(*store_->get(h), a + b);
  // Committing bytes that are there already is a no-op.
  auto again = store_->writer();
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->write(a + b).ok());
  EXPECT_EQ(*(*again)->commit(""), h);
}

TEST_P(BlobStoreConformance, AWriterWithTheWrongHashOrNoCommitStoresNothing) {
  auto w = store_->writer();
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->write("some bytes").ok());
  std::string claimed = sha256Hex("other bytes");
  auto committed = (*w)->commit(claimed);
  EXPECT_EQ(committed.status().code(), Code::kInvalidArgument);
  EXPECT_NE(committed.status().message().find("nothing was stored"), std::string::npos);
  EXPECT_FALSE(store_->has(claimed));
  EXPECT_FALSE(store_->has(sha256Hex("some bytes")));
  {
    auto abandoned = store_->writer();
    ASSERT_TRUE(abandoned.ok());
    ASSERT_TRUE((*abandoned)->write("abandoned").ok());
  }
  EXPECT_FALSE(store_->has(sha256Hex("abandoned")));
}

TEST_P(BlobStoreConformance, PutFileStreamsAFileAndSaysWhetherItWasNew) {
  char dir[] = "/tmp/nubo-putfile-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/f";
  std::string bytes(1 << 20, 'z');
  ASSERT_TRUE(writeFileAtomic(path, bytes).ok());
  bool stored = false;
  auto h = putFile(*store_, path, &stored);
  ASSERT_TRUE(h.ok()) << h.status().toString();
  EXPECT_EQ(*h, sha256Hex(bytes));
  EXPECT_TRUE(stored);
  EXPECT_EQ(*store_->size(*h), bytes.size());
  ASSERT_TRUE(putFile(*store_, path, &stored).ok());
  EXPECT_FALSE(stored);
  ::unlink(path.c_str());
  ::rmdir(dir);
}

TEST_P(BlobStoreConformance, MissingNamesWhatIsNotStoredInOneCall) {
  std::string a = "one", b = "two";
  ASSERT_TRUE(store_->put(sha256Hex(a), a).ok());
  ASSERT_TRUE(store_->put(sha256Hex(b), b).ok());
  std::string absent = sha256Hex("three");
  auto m = store_->missing({sha256Hex(a), absent, sha256Hex(b), absent});
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(*m, (std::vector<std::string>{absent, absent}));
  EXPECT_TRUE(store_->missing({})->empty());
  EXPECT_EQ(store_->missing({sha256Hex(a), "not-a-hash"}).status().code(), Code::kInvalidArgument);
}

TEST_P(BlobStoreConformance, ListTouchAndRemove) {
  std::string a = "first", b = "second";
  ASSERT_TRUE(store_->put(sha256Hex(a), a).ok());
  ASSERT_TRUE(store_->put(sha256Hex(b), b).ok());
  std::map<std::string, uint64_t> seen;
  int64_t newest = 0;
  ASSERT_TRUE(store_->list([&](const BlobStore::Listed& l) {
                       seen[l.hash] = l.size;
                       newest = std::max(newest, l.touched_ms);
                       return true;
                     }).ok());
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[sha256Hex(b)], b.size());
  EXPECT_GT(newest, 1'600'000'000'000) << "touched_ms is wall-clock milliseconds";
  EXPECT_TRUE(store_->touch(sha256Hex(a)).ok());
  EXPECT_EQ(store_->touch(sha256Hex("absent")).code(), Code::kNotFound);
  ASSERT_TRUE(store_->remove(sha256Hex(a)).ok());
  EXPECT_FALSE(store_->has(sha256Hex(a)));
  EXPECT_TRUE(store_->has(sha256Hex(b)));
  EXPECT_TRUE(store_->remove(sha256Hex(a)).ok()) << "removing an absent blob is fine";
  EXPECT_EQ(store_->remove("../x").code(), Code::kInvalidArgument);
}

}  // namespace nubo::blob
