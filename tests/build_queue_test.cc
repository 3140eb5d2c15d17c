// BuildQueue's contract with a fake builder standing in for BuildRunner:
// how many builds run at once (and one per app), the bounded queue, what
// each outcome records in the store, restarts, removing an app, shutdown.
#include "build/build_queue.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "common/clock.h"
#include "store/sqlite/sqlite_metadata_store.h"
#include "test_util.h"

namespace nubo::build {
namespace {

using store::DeploymentState;
constexpr auto kWait = std::chrono::seconds(10);

// Runs no process: each build waits until the test releases it (or it is
// cancelled), and the builder counts what runs at once.
class FakeBuilder final : public Builder {
 public:
  Result<BuildOutput> run(const BuildJob& job, const BuildLog& log) override {
    std::unique_lock lock(mu_);
    if (all_cancelled_) return Unavailable("shutting down");
    int& mine = running_[job.app];
    ++mine;
    ++total_;
    most_total_ = std::max(most_total_, total_);
    most_per_app_ = std::max(most_per_app_, mine);
    started_.push_back(job.id);
    builders_.push_back(job.builder);
    cv_.notify_all();
    lock.unlock();
    log("stdout", "building " + job.id);
    lock.lock();
    cv_.wait(lock, [&] { return released_.count(job.id) || cancelled_.count(job.id) || all_cancelled_; });
    --running_[job.app];
    --total_;
    cv_.notify_all();
    if (all_cancelled_) return Unavailable("the server is shutting down");
    if (cancelled_.count(job.id)) return NotFound("build " + job.id + " was cancelled");
    if (job.id.rfind("bad", 0) == 0) return FailedPrecondition("the builder exited with status 1");
    return BuildOutput{std::string(64, 'b'), 1, 1, 1, 0.1};
  }
  void cancelAll() override {
    std::lock_guard lock(mu_);
    all_cancelled_ = true;
    cv_.notify_all();
  }
  bool cancelled() const override {
    std::lock_guard lock(mu_);
    return all_cancelled_;
  }
  void cancel(const std::string& id) override {
    std::lock_guard lock(mu_);
    cancelled_.insert(id);
    cv_.notify_all();
  }
  void removeCache(const std::string& app) override {
    std::lock_guard lock(mu_);
    caches_removed_.push_back(app);
    // A cache is only removed when no build of its app runs.
    if (running_[app] != 0) cache_removed_while_building_ = true;
  }
  void removeLeftovers() override {
    std::lock_guard lock(mu_);
    ++leftovers_removed_;
  }

  void release(const std::string& id) {
    std::lock_guard lock(mu_);
    released_.insert(id);
    cv_.notify_all();
  }
  // Waits until `n` builds have started (in all); false at the deadline.
  bool waitStarted(size_t n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return started_.size() >= n; });
  }
  bool waitRunning(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, kWait, [&] { return total_ == n; });
  }
  template <class T>
  T read(T FakeBuilder::*field) {
    std::lock_guard lock(mu_);
    return this->*field;
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, int> running_;
  int total_ = 0, most_total_ = 0, most_per_app_ = 0, leftovers_removed_ = 0;
  std::vector<std::string> started_, builders_, caches_removed_;
  std::set<std::string> released_, cancelled_;
  bool all_cancelled_ = false;
  bool cache_removed_while_building_ = false;
};

class BuildQueueTest : public testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteMetadataStore::open(tmp_.sub("meta.db"), clock_);
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(*s);
    logs_ = std::make_unique<logs::LogStore>(tmp_.sub("build-logs"));
  }

  std::unique_ptr<BuildQueue> queue(QueueOptions o, BuildQueue::Start start = nullptr,
                                    BuildQueue::Verify verify = nullptr) {
    return std::make_unique<BuildQueue>(*store_, builder_, *logs_, std::move(verify), o, std::move(start));
  }

  // A QUEUED deployment of `app` built by the builder "fake" (production
  // moves to it once it is READY).
  store::Deployment create(const std::string& app, const std::string& id, const std::string& runtime = "static",
                           DeploymentState state = DeploymentState::kQueued) {
    store::Deployment d;
    d.id = id;
    d.app = app;
    d.root_tree = std::string(64, 'a');
    d.manifest_json = R"({"runtime": ")" + runtime + R"(", "build": {"builder": "fake"}})";
    d.runtime = runtime;
    d.state = state;
    EXPECT_TRUE(store_->createDeployment(d, "production", "t").ok());
    d.promote_alias = "production";
    return d;
  }
  DeploymentState state(const std::string& id) { return store_->getDeployment(id)->state; }
  bool waitState(const std::string& id, DeploymentState want) {
    auto until = std::chrono::steady_clock::now() + kWait;
    while (std::chrono::steady_clock::now() < until) {
      if (state(id) == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return state(id) == want;
  }
  std::string production(const std::string& app) {
    auto aliases = store_->listAliases(app);
    if (!aliases.ok()) return "";
    for (const auto& a : *aliases) {
      if (a.name == "production") return a.deployment_id;
    }
    return "";
  }
  std::string logOf(const std::string& id) {
    std::string out;
    for (const auto& l : logs_->read(id, std::nullopt, "", 1000).lines) out += l.text + "\n";
    return out;
  }

  testing_util::TempDir tmp_;
  FakeClock clock_;
  std::unique_ptr<store::MetadataStore> store_;
  std::unique_ptr<logs::LogStore> logs_;
  FakeBuilder builder_;
};

TEST_F(BuildQueueTest, RunsAtMostConcurrencyBuildsAndOnePerApp) {
  auto q = queue({.concurrency = 2, .max_queued = 64});
  q->start();
  std::vector<std::string> ids = {"a1", "a2", "a3", "b1", "b2", "c1"};
  for (const auto& id : ids) ASSERT_TRUE(q->submit(create(id.substr(0, 1), id)).ok());
  // Two run (a1 and b1: a2 waits for a1 although a thread is free).
  ASSERT_TRUE(builder_.waitStarted(2));
  ASSERT_TRUE(builder_.waitRunning(2));
  auto first = builder_.read(&FakeBuilder::started_);
  ASSERT_EQ(first.size(), 2u);
  EXPECT_NE(first[0].substr(0, 1), first[1].substr(0, 1)) << "two builds of one app ran at once";
  for (const auto& id : ids) builder_.release(id);
  for (const auto& id : ids) EXPECT_TRUE(waitState(id, DeploymentState::kReady)) << id;
  EXPECT_EQ(builder_.read(&FakeBuilder::most_total_), 2);
  EXPECT_EQ(builder_.read(&FakeBuilder::most_per_app_), 1);
  // An app's builds ran in the order they were submitted.
  auto order = builder_.read(&FakeBuilder::started_);
  auto pos = [&](const std::string& id) { return std::find(order.begin(), order.end(), id) - order.begin(); };
  EXPECT_LT(pos("a1"), pos("a2"));
  EXPECT_LT(pos("a2"), pos("a3"));
  for (const auto& b : builder_.read(&FakeBuilder::builders_)) EXPECT_EQ(b, "fake");
  // The last READY build of each app holds production.
  EXPECT_EQ(production("a"), "a3");
  EXPECT_NE(logOf("a1").find("building a1"), std::string::npos) << logOf("a1");
}

TEST_F(BuildQueueTest, AFullQueueRefusesWithResourceExhausted) {
  auto q = queue({.concurrency = 1, .max_queued = 2});
  // Not started: nothing takes builds off the queue.
  ASSERT_TRUE(q->submit(create("a", "a1")).ok());
  ASSERT_TRUE(q->submit(create("b", "b1")).ok());
  Status full = q->submit(create("c", "c1"));
  EXPECT_EQ(full.code(), Code::kResourceExhausted);
  EXPECT_NE(full.message().find("queue is full"), std::string::npos) << full.message();
  EXPECT_EQ(q->queued(), 2u);
}

TEST_F(BuildQueueTest, FailuresAreRecordedAndMoveNoAlias) {
  std::vector<std::string> verified;
  auto q = queue({.concurrency = 2}, nullptr, [&](const store::Deployment& d, const std::string& tree) {
    verified.push_back(d.id);
    return d.id == "unrunnable" ? InvalidArgument("the build's output has no index.js to run") : Status::Ok();
  });
  q->start();
  ASSERT_TRUE(q->submit(create("x", "bad1")).ok());
  ASSERT_TRUE(q->submit(create("y", "unrunnable")).ok());
  builder_.release("bad1");
  builder_.release("unrunnable");
  ASSERT_TRUE(waitState("bad1", DeploymentState::kFailed));
  ASSERT_TRUE(waitState("unrunnable", DeploymentState::kFailed));
  EXPECT_NE(store_->getDeployment("bad1")->error.find("exited with status 1"), std::string::npos);
  EXPECT_NE(store_->getDeployment("unrunnable")->error.find("no index.js"), std::string::npos);
  EXPECT_EQ(production("x"), "");
  EXPECT_EQ(production("y"), "");
  EXPECT_EQ(verified, std::vector<std::string>{"unrunnable"});  // a failed build is not verified
}

TEST_F(BuildQueueTest, BuiltCodeIsStartedBeforeItIsReady) {
  std::vector<std::string> started;
  auto q = queue({.concurrency = 1}, [&](const store::Deployment& d) {
    started.push_back(d.id);
    EXPECT_EQ(d.state, DeploymentState::kStarting);
    EXPECT_EQ(d.output_tree, std::string(64, 'b'));
    return d.id == "refused" ? Status(ResourceExhausted("the start checks are full")) : Status::Ok();
  });
  q->start();
  ASSERT_TRUE(q->submit(create("code", "code1", "node")).ok());
  ASSERT_TRUE(q->submit(create("files", "files1", "static")).ok());
  ASSERT_TRUE(q->submit(create("other", "refused", "node")).ok());
  for (const char* id : {"code1", "files1", "refused"}) builder_.release(id);
  ASSERT_TRUE(waitState("code1", DeploymentState::kStarting));  // the start check makes it READY
  ASSERT_TRUE(waitState("files1", DeploymentState::kReady));    // files serve as built
  ASSERT_TRUE(waitState("refused", DeploymentState::kFailed));
  EXPECT_EQ(production("code"), "");  // not before it started
  EXPECT_EQ(started, (std::vector<std::string>{"code1", "refused"}));
}

TEST_F(BuildQueueTest, ARestartStartsUnfinishedBuildsOverUntilMaxAttempts) {
  create("a", "again", "static", DeploymentState::kQueued);
  create("b", "tired", "static", DeploymentState::kQueued);
  // "tired" was started three times already (each move to BUILDING counts).
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(store_->setDeploymentState("tired", DeploymentState::kBuilding).ok());
  ASSERT_TRUE(store_->setDeploymentState("again", DeploymentState::kBuilding).ok());
  auto q = queue({.concurrency = 2, .max_queued = 64, .max_attempts = 3});
  q->start();
  EXPECT_EQ(builder_.read(&FakeBuilder::leftovers_removed_), 1);
  ASSERT_TRUE(waitState("tired", DeploymentState::kFailed));
  EXPECT_NE(store_->getDeployment("tired")->error.find("interrupted 3 times"), std::string::npos);
  ASSERT_TRUE(builder_.waitStarted(1));
  builder_.release("again");
  ASSERT_TRUE(waitState("again", DeploymentState::kReady));
  EXPECT_EQ(production("a"), "again");  // the pending alias move held
  EXPECT_NE(logOf("again").find("starts over"), std::string::npos);
}

TEST_F(BuildQueueTest, RemovingAnAppStopsItsBuildAndThenRemovesItsCache) {
  auto q = queue({.concurrency = 2});
  q->start();
  ASSERT_TRUE(q->submit(create("gone", "g1")).ok());
  ASSERT_TRUE(q->submit(create("gone", "g2")).ok());
  ASSERT_TRUE(builder_.waitRunning(1));
  ASSERT_TRUE(store_->deleteApp("gone").ok());
  q->removeApp("gone");
  ASSERT_TRUE(builder_.waitRunning(0));
  auto until = std::chrono::steady_clock::now() + kWait;
  while (builder_.read(&FakeBuilder::caches_removed_).empty() && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  EXPECT_EQ(builder_.read(&FakeBuilder::caches_removed_), std::vector<std::string>{"gone"});
  EXPECT_FALSE(builder_.read(&FakeBuilder::cache_removed_while_building_));
  EXPECT_EQ(q->queued(), 0u);  // g2 never runs
  EXPECT_EQ(builder_.read(&FakeBuilder::started_).size(), 1u);
}

TEST_F(BuildQueueTest, ShutdownLeavesRunningBuildsToStartOverAndRefusesNewOnes) {
  auto q = queue({.concurrency = 1});
  q->start();
  ASSERT_TRUE(q->submit(create("a", "a1")).ok());
  ASSERT_TRUE(builder_.waitRunning(1));
  q->shutdown();
  EXPECT_EQ(state("a1"), DeploymentState::kBuilding);  // the next start builds it again
  EXPECT_EQ(q->submit(create("b", "b1")).code(), Code::kUnavailable);
}

}  // namespace
}  // namespace nubo::build
