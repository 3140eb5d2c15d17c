#include "common/secret_box.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "test_util.h"

namespace nubo {
namespace {

TEST(SecretBoxTest, SealedValuesOpenOnlyAsTheSecretTheyWereMadeFor) {
  auto box = SecretBox::fromKeys(std::string(32, 'k'));
  ASSERT_TRUE(box.ok());
  std::string sealed = box->seal("postgres://user:hunter2@db/prod", "shop", "DATABASE_URL");
  EXPECT_EQ(sealed.find("hunter2"), std::string::npos);
  EXPECT_EQ(sealed.rfind("nubo-secret-v1:", 0), 0u);
  EXPECT_NE(box->seal("same", "shop", "A"), box->seal("same", "shop", "A")) << "a fresh nonce each time";
  EXPECT_EQ(*box->unseal(sealed, "shop", "DATABASE_URL"), "postgres://user:hunter2@db/prod");
  EXPECT_EQ(*box->unseal(box->seal("", "shop", "EMPTY"), "shop", "EMPTY"), "");

  // Moved to another app or name: refused.
  auto moved = box->unseal(sealed, "blog", "DATABASE_URL");
  EXPECT_FALSE(moved.ok());
  EXPECT_NE(moved.status().message().find("DATABASE_URL of app blog"), std::string::npos);
  EXPECT_FALSE(box->unseal(sealed, "shop", "OTHER").ok());
  // One byte changed anywhere: refused with a clear error, never garbage.
  for (size_t i = 15; i < sealed.size(); ++i) {
    std::string bad = sealed;
    bad[i] = bad[i] == 'A' ? 'B' : 'A';
    auto r = box->unseal(bad, "shop", "DATABASE_URL");
    EXPECT_FALSE(r.ok()) << "byte " << i;
  }
  EXPECT_FALSE(box->unseal("plain text", "shop", "DATABASE_URL").ok());
}

TEST(SecretBoxTest, ARotationOpensBothKeysAndSealsWithTheNewOne) {
  auto old_box = SecretBox::fromKeys(std::string(32, 'a'));
  std::string before = old_box->seal("v", "shop", "K");
  auto rotating = SecretBox::fromKeys(std::string(32, 'a'), std::string(32, 'b'));
  ASSERT_TRUE(rotating->rotating());
  EXPECT_EQ(*rotating->unseal(before, "shop", "K"), "v");
  EXPECT_FALSE(rotating->sealedWithNewest(before));
  std::string after = rotating->seal("v", "shop", "K");
  EXPECT_TRUE(rotating->sealedWithNewest(after));
  auto new_only = SecretBox::fromKeys(std::string(32, 'b'));
  EXPECT_EQ(*new_only->unseal(after, "shop", "K"), "v");
  auto wrong = new_only->unseal(before, "shop", "K");
  EXPECT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("another secret key"), std::string::npos);
}

TEST(SecretBoxTest, TheKeyFileIsMadeOnceAndMustBePrivate) {
  testing_util::TempDir dir;
  std::string path = dir.sub("secret.key");
  auto first = SecretBox::open(path, dir.sub("secret.key.next"));
  ASSERT_TRUE(first.ok()) << first.status().toString();
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string sealed = first->seal("x", "a", "B");
  auto again = SecretBox::open(path, "");
  EXPECT_EQ(*again->unseal(sealed, "a", "B"), "x") << "the same key next time";
  ASSERT_EQ(::chmod(path.c_str(), 0644), 0);
  auto open_to_all = SecretBox::open(path, "");
  EXPECT_FALSE(open_to_all.ok());
  EXPECT_NE(open_to_all.status().message().find("chmod 600"), std::string::npos);
}

}  // namespace
}  // namespace nubo
