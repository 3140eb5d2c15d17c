// StartCheck's contract with a probe standing in for Functions::probe: every
// deployment submitted ends READY or FAILED, one probe per app at a time,
// bounded queues, and a restart checks again what was left STARTING.
#include "runtime/start_check.h"

#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <atomic>
#include <optional>
#include <thread>

#include "common/clock.h"
#include "store/sqlite/sqlite_metadata_store.h"
#include "test_util.h"

namespace nubo::runtime {
namespace {

namespace asio = boost::asio;
using store::DeploymentState;

class StartCheckTest : public testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteMetadataStore::open(tmp_.sub("meta.db"), clock_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    logs_ = std::make_unique<logs::LogStore>(tmp_.sub("build-logs"));
    thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }

  // A STARTING deployment of `app` (its alias to move: production).
  store::Deployment create(const std::string& app, const std::string& id) {
    store::Deployment d;
    d.id = id;
    d.app = app;
    d.root_tree = std::string(64, 'a');
    d.manifest_json = "{}";
    d.runtime = "node";
    d.state = DeploymentState::kStarting;
    EXPECT_TRUE(store_->createDeployment(d, "production", "t").ok());
    d.promote_alias = "production";
    return d;
  }
  DeploymentState state(const std::string& id) { return store_->getDeployment(id)->state; }
  bool settled(const std::vector<std::string>& ids) {
    for (const auto& id : ids) {
      auto s = state(id);
      if (s != DeploymentState::kReady && s != DeploymentState::kFailed) return false;
    }
    return true;
  }
  bool waitUntil(const std::function<bool()>& cond) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < until) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return cond();
  }

  // A probe that takes `ms` on a timer, counts probes running per app, and
  // fails deployments whose id starts with "bad".
  StartCheck::Probe probe(int ms) {
    return [this, ms](store::Deployment d) -> asio::awaitable<Result<std::string>> {
      int now = ++running_[d.app == "a" ? 0 : 1];
      int& most = most_[d.app == "a" ? 0 : 1];
      most = std::max(most, now);
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
      co_await t.async_wait(asio::use_awaitable);
      --running_[d.app == "a" ? 0 : 1];
      probed_++;
      if (d.id.rfind("bad", 0) == 0) co_return Result<std::string>(FailedPrecondition("the code failed to load: x"));
      co_return std::string("started in 1 ms");
    };
  }

  testing_util::TempDir tmp_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteMetadataStore> store_;
  std::unique_ptr<logs::LogStore> logs_;
  asio::io_context ioc_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(ioc_)};
  std::thread thread_;
  int running_[2] = {0, 0};  // touched on the io_context's one thread
  int most_[2] = {0, 0};
  std::atomic<int> probed_{0};
};

TEST_F(StartCheckTest, EveryDeploymentEndsReadyOrFailedOneProbePerAppAtATime) {
  StartCheck check(*store_, *logs_, {&ioc_}, probe(20));
  std::vector<std::string> ids = {"a1", "bad2", "a3"};
  for (const auto& id : ids) ASSERT_TRUE(check.submit(create("a", id)).ok());
  ASSERT_TRUE(check.submit(create("b", "b1")).ok());
  ids.push_back("b1");
  ASSERT_TRUE(waitUntil([&] { return settled(ids); }));
  EXPECT_EQ(state("a1"), DeploymentState::kReady);
  EXPECT_EQ(state("bad2"), DeploymentState::kFailed);
  EXPECT_EQ(store_->getDeployment("bad2")->error, "it failed to start: the code failed to load: x");
  EXPECT_EQ(state("a3"), DeploymentState::kReady);
  EXPECT_EQ(state("b1"), DeploymentState::kReady);
  // The alias moved to each READY one in turn, never to the failed one.
  auto aliases = store_->listAliases("a");
  ASSERT_TRUE(aliases.ok());
  ASSERT_EQ(aliases->size(), 1u);
  EXPECT_EQ(aliases->front().deployment_id, "a3");
  EXPECT_EQ(most_[0], 1) << "one probe of app a at a time";
  auto log = logs_->read("bad2", 0, "", 100);
  ASSERT_FALSE(log.lines.empty());
  EXPECT_EQ(log.lines.back().text, "it failed to start: the code failed to load: x");
}

TEST_F(StartCheckTest, QueuesAreBoundedInAllAndPerApp) {
  StartCheck check(*store_, *logs_, {&ioc_}, probe(10000), {/*concurrency=*/1, /*max_queued=*/3,
                                                          /*max_queued_per_app=*/2});
  ASSERT_TRUE(check.submit(create("a", "a1")).ok());  // running at once: nothing waits
  ASSERT_TRUE(check.submit(create("a", "a2")).ok());
  ASSERT_TRUE(check.submit(create("a", "a3")).ok());
  Status third = check.submit(create("a", "a4"));
  EXPECT_EQ(third.code(), Code::kResourceExhausted);
  EXPECT_NE(third.message().find("app a has 2 deployments waiting"), std::string::npos) << third.message();
  ASSERT_TRUE(check.submit(create("b", "b1")).ok());
  Status full = check.submit(create("b", "b2"));
  EXPECT_EQ(full.code(), Code::kResourceExhausted);
  EXPECT_NE(full.message().find("too many deployments are waiting"), std::string::npos) << full.message();
}

TEST_F(StartCheckTest, WhatARunLeftStartingIsCheckedAtTheNextStart) {
  create("a", "a1");
  create("b", "bad1");
  StartCheck check(*store_, *logs_, {&ioc_}, probe(1));
  check.start();
  ASSERT_TRUE(waitUntil([&] { return settled({"a1", "bad1"}); }));
  EXPECT_EQ(state("a1"), DeploymentState::kReady);
  EXPECT_EQ(state("bad1"), DeploymentState::kFailed);
  EXPECT_EQ(logs_->read("a1", 0, "", 100).lines.front().text.find("the server restarted"), 0u);
}

TEST_F(StartCheckTest, NothingIsTakenOnceShutDown) {
  StartCheck check(*store_, *logs_, {&ioc_}, probe(1));
  check.shutdown();
  EXPECT_EQ(check.submit(create("a", "a1")).code(), Code::kUnavailable);
  EXPECT_EQ(state("a1"), DeploymentState::kStarting) << "checked at the next start";
}

}  // namespace
}  // namespace nubo::runtime
