// Instance state transitions against a fake runtime (a few lines of Python
// speaking the instance protocol), with the caller's executor driven by the
// test so that the instance's own thread can be made to run first.
#include "runtime/instance.h"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <optional>
#include <thread>

#include "fake_runtime.h"

namespace nubo::runtime {
namespace {

namespace asio = boost::asio;

// Says HELLO, waits for SPECIALIZE, answers READY and exits at once.
const std::string kReadyThenExit = testing_util::fakeRuntime(R"(
n = struct.unpack(">I", read_exactly(10)[:4])[0]
read_exactly(n)
send(3, b'{"ok":true,"load_ms":1}')
os._exit(0)
)");

bool waitUntil(const std::function<bool()>& cond) {
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!cond() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return cond();
}

// An instance whose process exits right after READY was set back to
// "ready" by the caller resuming after the exit was seen; the pool then
// handed that dead slot out and every request on it answered 502.
TEST(InstanceStateTest, AnInstanceThatDiesRightAfterReadyStaysDead) {
  asio::io_context instance_ioc(1), caller(1);
  auto instance_work = asio::make_work_guard(instance_ioc);
  auto caller_work = asio::make_work_guard(caller);
  std::thread instance_thread([&] { instance_ioc.run(); });
  PlainLauncher launcher;
  auto inst = Instance::launch(instance_ioc, 1, launcher, testing_util::fakeLaunch(kReadyThenExit), "fake-1", [](std::string_view, std::string_view) {});
  ASSERT_TRUE(inst.ok()) << inst.status().message();

  std::optional<Status> hello;
  asio::co_spawn(caller, [&]() -> asio::awaitable<void> {
    hello = co_await (*inst)->waitHello(Clock::now() + std::chrono::seconds(10));
  }, asio::detached);
  while (!hello) caller.run_one_for(std::chrono::milliseconds(10));
  ASSERT_TRUE(hello->ok()) << hello->message();
  EXPECT_EQ((*inst)->state(), Instance::State::kStem);

  std::optional<Result<double>> loaded;
  SpecializeInfo info{"d1", "app", "/", "index.js", {}, "node"};
  bool sent = false;
  std::function<void()> after_send = [&sent] { sent = true; };
  asio::co_spawn(caller, [&]() -> asio::awaitable<void> {
    loaded = co_await (*inst)->specialize(info, Clock::now() + std::chrono::seconds(10), after_send);
  }, asio::detached);
  // The caller runs until SPECIALIZE is sent and no further: READY (which
  // may already be back) is not taken before the exit is seen.
  while (!sent) caller.run_one_for(std::chrono::milliseconds(10));
  // The instance's thread sees READY and then the exit before the caller
  // resumes.
  ASSERT_TRUE(waitUntil([&] { return (*inst)->state() == Instance::State::kDead; }));
  while (!loaded) caller.run_one_for(std::chrono::milliseconds(10));
  EXPECT_FALSE(loaded->ok()) << "a dead instance is not ready";
  EXPECT_EQ((*inst)->state(), Instance::State::kDead);

  instance_work.reset();
  instance_ioc.stop();
  instance_thread.join();
}

}  // namespace
}  // namespace nubo::runtime
