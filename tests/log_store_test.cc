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


TEST(LogStoreTest, BufferedLinesFromManyThreadsAreAllReadAndInOrderPerThread) {
  testing_util::TempDir tmp;
  LogStore logs(tmp.sub("logs"));
  constexpr int kThreads = 4, kLines = 3000;
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kLines; ++i) {
        logs.appendBuffered("app", {1, "d" + std::to_string(t), "request", "r", accessText("GET", "/", 200, 1, 2, false)});
        logs.appendBuffered("app", {1, "d" + std::to_string(t), "stdout", "", std::to_string(i)});
      }
    });
  }
  for (auto& w : writers) w.join();
  // A read sees every line buffered before it, without waiting for the flush.
  LogFilter output;
  output.kind = LogFilter::Kind::kOutput;
  auto page = logs.read("app", uint64_t{0}, output, kThreads * kLines * 2);
  ASSERT_EQ(page.lines.size(), static_cast<size_t>(kThreads * kLines));
  std::vector<int> next(kThreads, 0);
  for (const auto& l : page.lines) EXPECT_EQ(l.text, std::to_string(next[std::stoi(l.deployment.substr(1))]++));
  LogFilter requests;
  requests.kind = LogFilter::Kind::kRequests;
  EXPECT_EQ(logs.read("app", uint64_t{0}, requests, kThreads * kLines * 2).lines.size(),
            static_cast<size_t>(kThreads * kLines));
  // And the writer flushes buffers on its own too.
  logs.appendBuffered("quiet", {1, "d", "request", "r", accessText("GET", "/", 200, 1, 2, false)});
  auto written = [&] {
    std::error_code ec;
    return std::filesystem::file_size(tmp.sub("logs") + "/quiet.log", ec) > 0 && !ec;
  };
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!written() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_TRUE(written()) << "flushed within kFlushEvery, not only by a read";
}

TEST(LogStoreTest, AccessRecordsSayWhatHappenedAndTheirStatusIsReadBack) {
  EXPECT_EQ(accessText("GET", "/a b\nc", 503, 1.5, std::nullopt, true), "GET /a?b?c 503 1.500ms -B cold");
  EXPECT_EQ(accessText("POST", "/x", 200, 0.25, 1234, false), "POST /x 200 0.250ms 1234B warm");
  EXPECT_EQ(accessStatus("POST /x 200 0.250ms 1234B warm"), 200);
  EXPECT_EQ(accessStatus("GET /a?b?c 503 1.500ms -B cold"), 503);
  EXPECT_EQ(accessStatus("hello world"), 0);
  EXPECT_EQ(accessStatus("GET / 2000 1ms"), 0);
  EXPECT_EQ(accessStatus("GET /"), 0);
}

TEST(LogStoreTest, SearchesFilterByKindStatusTextTimeRequestAndDeploymentAcrossTheRotatedFile) {
  testing_util::TempDir tmp;
  // Small files: the first ~100 KiB of the ~170 KiB written rotate into app.log.1.
  LogStore logs(tmp.sub("logs"), 100 * 1024);
  for (int i = 0; i < 2000; ++i) {
    int64_t ts = 1000 + i;
    std::string rid = "req" + std::to_string(i);
    std::string d = i % 2 ? "dodd" : "deven";
    int status = i % 10 == 0 ? 503 : i % 10 == 1 ? 404 : 200;
    logs.append("app", {ts, d, "request", rid, accessText("GET", "/p" + std::to_string(i), status, 1, 10, false)});
    logs.append("app", {ts, d, "stdout", rid, i == 7 ? "the Needle is here" : "line " + std::to_string(i)});
  }
  (void)logs.read("app", std::nullopt, "", 1);  // (waits until what was appended is written)
  ASSERT_TRUE(std::filesystem::exists(tmp.sub("logs") + "/app.log.1"));
  auto search = [&](auto set) {
    LogFilter f;
    set(f);
    return logs.read("app", std::nullopt, f, 100000).lines;
  };
  // The rotated file is searched too: the first request is found.
  auto first = search([](LogFilter& f) { f.request_id = "req0"; });
  ASSERT_EQ(first.size(), 2u) << "its access record and what it printed";
  EXPECT_EQ(first[0].stream, "request");
  EXPECT_EQ(first[1].text, "line 0");
  auto failed = search([](LogFilter& f) { f.status_class = 5; });
  EXPECT_EQ(failed.size(), 200u);
  for (const auto& l : failed) EXPECT_EQ(accessStatus(l.text), 503);
  EXPECT_EQ(search([](LogFilter& f) { f.status = 404; }).size(), 200u);
  EXPECT_EQ(search([](LogFilter& f) { f.status_class = 2; f.deployment = "dodd"; }).size(), 800u);
  auto needle = search([](LogFilter& f) { f.grep = "NEEDLE"; });
  ASSERT_EQ(needle.size(), 1u) << "grep ignores case";
  EXPECT_EQ(needle[0].request_id, "req7");
  auto window = search([](LogFilter& f) { f.kind = LogFilter::Kind::kOutput; f.since_ms = 1100; f.until_ms = 1109; });
  ASSERT_EQ(window.size(), 10u);
  EXPECT_EQ(window.front().text, "line 100");
  EXPECT_EQ(window.back().text, "line 109");
  // A limit keeps the newest matches.
  LogFilter f;
  f.kind = LogFilter::Kind::kRequests;
  auto last = logs.read("app", std::nullopt, f, 3).lines;
  ASSERT_EQ(last.size(), 3u);
  EXPECT_EQ(last.back().request_id, "req1999");
}

}  // namespace
}  // namespace nubo::logs
