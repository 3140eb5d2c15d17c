// LogStore: lines appended from many threads are all read back, in order
// per writer, by a reader that asks right after; removing an app removes
// what was queued for it too.
#include "logs/log_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <thread>

#include "test_util.h"

namespace nubo::logs {
namespace {

TEST(LogStoreTest, EveryLineAppendedBeforeAReadIsRead) {
  testing_util::TempDir tmp;
  LogStore logs(tmp.sub("logs"));
  constexpr int kThreads = 4, kLines = 2000;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i) {
        logs.append("app", {1, "d" + std::to_string(t), "stdout", "", std::to_string(i) + "\nsecond half"});
      }
    });
  }
  for (auto& w : writers) w.join();
  auto page = logs.read("app", uint64_t{0}, "", kThreads * kLines + 10);
  ASSERT_EQ(page.lines.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<int> next(kThreads, 0);
  for (const auto& l : page.lines) {
    int t = std::stoi(l.deployment.substr(1));
    EXPECT_EQ(l.text, std::to_string(next[t]++) + " second half") << "in order, one line each";
  }
  EXPECT_EQ(logs.dropped(), 0u);
  // Following from the cursor: only what comes after.
  logs.append("app", {2, "d0", "nubo", "r1", "later"});
  auto more = logs.read("app", page.cursor, "", 100);
  ASSERT_EQ(more.lines.size(), 1u);
  EXPECT_EQ(more.lines[0].request_id, "r1");
}

TEST(LogStoreTest, RemovingAnAppRemovesWhatWasQueuedForIt) {
  testing_util::TempDir tmp;
  LogStore logs(tmp.sub("logs"));
  for (int i = 0; i < 1000; ++i) logs.append("gone", {1, "d", "stdout", "", "x"});
  logs.removeApp("gone");
  EXPECT_FALSE(std::filesystem::exists(tmp.sub("logs/gone.log")));
  EXPECT_TRUE(logs.read("gone", std::nullopt, "", 10).lines.empty());
}

}  // namespace
}  // namespace nubo::logs
