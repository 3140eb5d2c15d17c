// LogStore: lines appended from many threads are all read back, in order
// per writer, by a reader that asks right after; removing an app removes
// what was queued for it too.
#include "logs/log_store.h"

#include <gtest/gtest.h>

#include <mutex>

#include <condition_variable>

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

// Followers are told when an app's lines are written (instead of polling),
// and what they then read holds those lines.
TEST(LogStoreTest, WatchersHearOfWrittenLinesOnceTheyAreReadable) {
  testing_util::TempDir tmp;
  LogStore logs(tmp.sub("logs"));
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> heard;
  size_t readable_when_heard = 0;
  uint64_t id = logs.watch([&](const std::string& app) {
    std::lock_guard lock(mu);
    heard.push_back(app);
    cv.notify_all();
  });
  logs.append("web", {1, "d1", "stdout", "", "hello"});
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !heard.empty(); }));
    EXPECT_EQ(heard.front(), "web");
  }
  readable_when_heard = logs.read("web", std::nullopt, "", 10).lines.size();
  EXPECT_EQ(readable_when_heard, 1u);
  logs.unwatch(id);
  logs.append("web", {2, "d1", "stdout", "", "after"});
  EXPECT_EQ(logs.read("web", std::nullopt, "", 10).lines.size(), 2u);  // (read waits for the writer)
  std::lock_guard lock(mu);
  EXPECT_EQ(heard.size(), 1u) << "an unwatched follower hears nothing";
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
