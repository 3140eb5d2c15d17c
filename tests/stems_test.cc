// Stems with a fake runtime (Python saying HELLO, then waiting): the pool
// grows with the recent cold starts within its bounds, shrinks once quiet
// (trim() given a later time), and a cold start that finds none ready takes
// one that is warming instead of going without.
#include "runtime/stems.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <future>
#include <optional>
#include <thread>

#include "fake_runtime.h"

namespace nubo::runtime {
namespace {

namespace asio = boost::asio;

// Says HELLO, then waits.
const std::string kStem = testing_util::fakeRuntime("os.read(fd, 1)\n");

class StemsTest : public testing::Test {
 protected:
  void SetUp() override { thread_ = std::thread([this] { shard_.run(); }); }
  void TearDown() override {
    if (stems_) stems_->shutdown();
    spawner_.stop();
    spawner_.join();
    work_.reset();
    shard_.stop();
    thread_.join();
  }
  void make(StemOptions o) {
    stems_ = std::make_unique<Stems>(o, StemProfile{}, std::vector<asio::io_context*>{&shard_},
                                     spawner_.get_executor(), [this](const StemProfile&, asio::io_context& shard, bool) {
                                       launched_++;
                                       return Instance::launch(shard, 1, launcher_, testing_util::fakeLaunch(kStem),
                                                               "stem-" + std::to_string(launched_.load()),
                                                               [](std::string_view, std::string_view) {});
                                     });
  }
  // take() run to its end on the shard.
  std::shared_ptr<Instance> take() {
    std::promise<std::shared_ptr<Instance>> got;
    asio::co_spawn(shard_, [&]() -> asio::awaitable<void> {
      got.set_value(co_await stems_->take(StemProfile{}, shard_.get_executor(), false));
    }, asio::detached);
    return got.get_future().get();
  }
  bool waitUntil(const std::function<bool()>& cond) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!cond() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return cond();
  }

  asio::io_context shard_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(shard_)};
  std::thread thread_;
  asio::thread_pool spawner_{1};
  PlainLauncher launcher_;
  std::atomic<int> launched_{0};
  std::unique_ptr<Stems> stems_;
};

TEST_F(StemsTest, ThePoolGrowsWithColdStartsWithinItsBoundAndShrinksWhenQuiet) {
  make({.base = 2, .max_total = 5, .window = std::chrono::seconds(60), .refill_delay = std::chrono::milliseconds(1)});
  stems_->start();
  ASSERT_TRUE(waitUntil([&] { return stems_->readyCount() == 2; }));
  std::vector<std::shared_ptr<Instance>> taken;
  for (int i = 0; i < 4; ++i) {
    auto s = take();
    ASSERT_NE(s, nullptr) << "take " << i;
    taken.push_back(s);
  }
  // Four cold starts within the window: 2 + 4, held to 5 in all.
  ASSERT_TRUE(waitUntil([&] { return stems_->readyCount() == 5; })) << stems_->readyCount();
  stems_->trim(Clock::now());
  EXPECT_EQ(stems_->readyCount(), 5u) << "still within the window";
  // Quiet for longer than the window: back to the base.
  stems_->trim(Clock::now() + std::chrono::seconds(61));
  EXPECT_EQ(stems_->readyCount(), 2u);
  for (auto& s : taken) s->kill();
}

TEST_F(StemsTest, AColdStartTakesAStemThatIsWarmingRatherThanNone) {
  make({.base = 1, .max_total = 2, .refill_delay = std::chrono::milliseconds(1)});
  stems_->start();  // one warming; nothing ready yet
  auto s = take();
  ASSERT_NE(s, nullptr) << "the warming stem was waited for";
  EXPECT_EQ(s->state(), Instance::State::kStem);
  EXPECT_TRUE(s->label() == "stem-1" || s->label() == "stem-2") << "the first of those warming: " << s->label();
  s->kill();
}

TEST_F(StemsTest, AStemsCountIsSizedFromMemory) {
  EXPECT_EQ(stemsForMemory(0, 2), 2);
  EXPECT_EQ(stemsForMemory(8ull << 30, 2), 16);
  EXPECT_EQ(stemsForMemory(1ull << 40, 2), 64);
}

}  // namespace
}  // namespace nubo::runtime
