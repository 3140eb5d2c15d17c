// The cron scheduler over a real SQLite store, driven by a FakeClock: each
// scheduled time fires once, across restarts; downtime makes up one run.
#include "cron/cron_scheduler.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "common/ids.h"
#include "store/sqlite/sqlite_metadata_store.h"
#include "test_util.h"

namespace nubo::cron {
namespace {

constexpr int64_t kMinute = 60'000;

class CronSchedulerTest : public testing::Test {
 protected:
  void SetUp() override {
    clock_.set(1'800'000'000'000 - 1'800'000'000'000 % kMinute + 30'000);  // hh:mm:30
    store_ = std::move(store::SqliteMetadataStore::open(dir_.sub("m.db"), clock_)).value();
  }
  std::unique_ptr<CronScheduler> scheduler() {
    return std::make_unique<CronScheduler>(*store_, logs_, clock_,
                                           [this](const CronRun& run, const std::atomic<bool>&) {
                                             std::unique_lock lock(mu_);
                                             fired_.push_back(run);
                                             released_.wait(lock, [this] { return !hold_; });
                                             return CronResult{200, "r" + std::to_string(fired_.size()), ""};
                                           });
  }
  std::string deploy(const std::string& cron_json, const std::string& promote = "production") {
    store::Deployment d;
    d.id = newDeploymentId();
    d.app = "shop";
    d.root_tree = std::string(64, 'a');
    d.manifest_json = R"({"runtime": "static", "cron": )" + cron_json + "}";
    d.runtime = "static";
    d.state = store::DeploymentState::kReady;
    EXPECT_TRUE(store_->createDeployment(d, promote, "t").ok());
    return d.id;
  }
  size_t fired() {
    std::lock_guard lock(mu_);
    return fired_.size();
  }

  testing_util::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteMetadataStore> store_;
  logs::LogStore logs_{dir_.sub("logs")};
  std::mutex mu_;
  std::condition_variable released_;
  bool hold_ = false;
  std::vector<CronRun> fired_;
};

TEST_F(CronSchedulerTest, EachScheduledTimeFiresOnceEvenAcrossARestart) {
  std::string d = deploy(R"([{"schedule": "*/5 * * * *", "path": "/tick"}, {"schedule": "@hourly", "path": "/h"}])");
  auto s = scheduler();
  auto next = s->tick();
  s->drain();
  EXPECT_EQ(fired(), 0u) << "first seen: a time already past is not made up";
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next % (5 * kMinute), 0);
  EXPECT_GT(*next, clock_.nowMillis());

  clock_.set(*next + 1000);
  s->tick();
  s->tick();  // the same minute again: nothing more
  s->drain();
  ASSERT_EQ(fired(), 1u);
  EXPECT_EQ(fired_[0].path, "/tick");
  EXPECT_EQ(fired_[0].deployment, d);
  EXPECT_EQ(fired_[0].slot_ms, *next);

  // A restart within the same minute: the time is recorded, not fired again.
  s.reset();
  s = scheduler();
  s->tick();
  s->drain();
  EXPECT_EQ(fired(), 1u);

  // Down for three hours: one run of each entry is made up, not 36 + 3.
  clock_.advance(3 * 60 * kMinute);
  s->tick();
  s->drain();
  EXPECT_EQ(fired(), 3u);
  auto state = s->describe("shop");
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->size(), 2u);
  EXPECT_EQ((*state)[0].last_status, 200);
  EXPECT_EQ((*state)[0].last_slot_ms % (5 * kMinute), 0);
  EXPECT_TRUE((*state)[0].next_ms.has_value());
  auto lines = logs_.read("shop", std::nullopt, "", 100).lines;
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().text.find(": 200 in "), std::string::npos) << lines.back().text;
}

TEST_F(CronSchedulerTest, ProductionCarriesTheSchedulesAndABusyRunIsNotStartedTwice) {
  std::string with = deploy(R"([{"schedule": "* * * * *", "path": "/every"}])");
  std::string without = deploy("[]");
  auto s = scheduler();
  s->tick();
  EXPECT_TRUE(s->describe("shop")->empty()) << "production has no schedules now";
  ASSERT_TRUE(store_->setAlias("shop", "production", with, "t").ok());
  s->tick();  // first seen
  {
    std::lock_guard lock(mu_);
    hold_ = true;
  }
  clock_.advance(kMinute);
  s->tick();
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (fired() < 1 && std::chrono::steady_clock::now() < until) std::this_thread::yield();
  ASSERT_EQ(fired(), 1u);
  clock_.advance(kMinute);
  s->tick();  // the run before still going: this time is skipped
  {
    std::lock_guard lock(mu_);
    hold_ = false;
  }
  released_.notify_all();
  s->drain();
  EXPECT_EQ(fired(), 1u);
  auto lines = logs_.read("shop", std::nullopt, "", 100).lines;
  bool skipped = false;
  for (const auto& l : lines) skipped |= l.text.find("skipped") != std::string::npos;
  EXPECT_TRUE(skipped);
  clock_.advance(kMinute);
  s->tick();
  s->drain();
  EXPECT_EQ(fired(), 2u);
}

}  // namespace
}  // namespace nubo::cron
