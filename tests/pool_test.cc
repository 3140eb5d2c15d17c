// Pool with a factory of fake instances (a few lines of Python speaking the
// instance protocol): it scales up to max_instances, queues a bounded
// number of callers for a bounded time (then kResourceExhausted: 503 at the
// edge), and reaps idle instances by the time it is given, keeping
// min_instances while the deployment is aliased.
#include "runtime/pool.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <atomic>
#include <future>
#include <optional>
#include <thread>

#include "fake_runtime.h"

namespace nubo::runtime {
namespace {

namespace asio = boost::asio;

class FakeFactory final : public InstanceFactory {
 public:
  explicit FakeFactory(asio::io_context& shard) : shard_(shard) {}
  asio::awaitable<Result<std::shared_ptr<Instance>>> create(const DeploymentSpec& spec, ColdStart*, EarlyOpen,
                                                           bool) override {
    created_++;
    auto inst = Instance::launch(shard_, 1, launcher_, testing_util::fakeLaunch(testing_util::readyForEverySpecialize()), "fake-" + std::to_string(created_.load()),
                                 [](std::string_view, std::string_view) {});
    if (!inst.ok()) co_return inst.status();
    Status hello = co_await (*inst)->waitHello(Clock::now() + std::chrono::seconds(10));
    if (!hello.ok()) co_return hello;
    SpecializeInfo info{spec.id, spec.app, "/", "index.js", {}, "node"};
    std::function<void()> after;
    auto loaded = co_await (*inst)->specialize(info, Clock::now() + std::chrono::seconds(10), after);
    if (!loaded.ok()) co_return loaded.status();
    co_return *inst;
  }
  std::atomic<int> created_{0};

 private:
  asio::io_context& shard_;
  PlainLauncher launcher_;
};

class PoolTest : public testing::Test {
 protected:
  void SetUp() override { thread_ = std::thread([this] { shard_.run(); }); }
  void TearDown() override {
    if (pool_) pool_->stopAll(/*kill=*/true);
    work_.reset();
    shard_.stop();
    thread_.join();
  }
  void make(PoolLimits limits) {
    DeploymentSpec spec;
    spec.id = "d1";
    spec.app = "app";
    spec.limits = limits;
    pool_ = std::make_shared<Pool>(spec, factory_);
  }
  // acquire() run on the shard; its result once it has one.
  std::future<Result<std::unique_ptr<Lease>>> acquire() {
    auto done = std::make_shared<std::promise<Result<std::unique_ptr<Lease>>>>();
    auto f = done->get_future();
    asio::co_spawn(shard_, [this, done]() -> asio::awaitable<void> {
      done->set_value(co_await pool_->acquire(Clock::now() + std::chrono::seconds(10)));
    }, asio::detached);
    return f;
  }
  // Releases a lease on the shard (as a request ends there).
  void release(std::unique_ptr<Lease> lease) {
    std::promise<void> done;
    asio::post(shard_, [&] {
      lease.reset();
      done.set_value();
    });
    done.get_future().get();
  }

  asio::io_context shard_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(shard_)};
  std::thread thread_;
  FakeFactory factory_{shard_};
  std::shared_ptr<Pool> pool_;
};

TEST_F(PoolTest, ItScalesToMaxInstancesThenQueuesForABoundedTime) {
  make({.concurrency = 1, .max_instances = 2, .queue_timeout = std::chrono::milliseconds(100)});
  auto a = acquire().get();
  auto b = acquire().get();
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(factory_.created_, 2);
  EXPECT_NE(&(*a)->instance(), &(*b)->instance()) << "one request per instance (concurrency 1)";
  // Both busy and no room for a third: the caller waits, then gets 503's code.
  auto c = acquire().get();
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), Code::kResourceExhausted);
  EXPECT_EQ(factory_.created_, 2);
  // A slot freed while one waits: the waiter gets it.
  auto d = acquire();
  release(std::move(*a));
  auto got = d.get();
  ASSERT_TRUE(got.ok()) << got.status().message();
  EXPECT_EQ(factory_.created_, 2);
  release(std::move(*b));
  release(std::move(*got));
}

TEST_F(PoolTest, TheQueueIsBounded) {
  make({.concurrency = 1, .max_instances = 1, .queue_limit = 1, .queue_timeout = std::chrono::seconds(5)});
  auto a = acquire().get();
  ASSERT_TRUE(a.ok());
  auto waiting = acquire();  // the one place in the queue
  ASSERT_EQ(waiting.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  auto full = acquire().get();
  ASSERT_FALSE(full.ok());
  EXPECT_EQ(full.status().code(), Code::kResourceExhausted);
  EXPECT_NE(full.status().message().find("queue full"), std::string::npos) << full.status().message();
  release(std::move(*a));
  auto got = waiting.get();
  ASSERT_TRUE(got.ok());
  release(std::move(*got));
}

TEST_F(PoolTest, IdleInstancesAreReapedByTheTimeGivenKeepingMinInstancesWhileAliased) {
  make({.concurrency = 1, .max_instances = 3, .min_instances = 1, .idle_ttl = std::chrono::seconds(300)});
  auto a = acquire().get();
  auto b = acquire().get();
  ASSERT_TRUE(a.ok() && b.ok());
  release(std::move(*a));
  release(std::move(*b));
  auto now = Clock::now();
  EXPECT_EQ(pool_->reap(now, /*aliased=*/true), 2u) << "not idle long enough";
  EXPECT_EQ(pool_->reap(now + std::chrono::seconds(301), /*aliased=*/true), 1u) << "min_instances kept";
  EXPECT_EQ(pool_->reap(now + std::chrono::seconds(301), /*aliased=*/false), 0u) << "scale to zero";
  EXPECT_TRUE(pool_->retireIfIdle());
  auto after = acquire().get();
  EXPECT_FALSE(after.ok()) << "a retired pool takes no request";
  EXPECT_TRUE(pool_->retired());
}

}  // namespace
}  // namespace nubo::runtime
