// Waits without an Asio timer each: Mailbox (runtime/instance.h) parks its
// caller on a Wakeup, and Deadlines (common/deadlines.h) ends the wait.
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "runtime/instance.h"

namespace nubo::runtime {
namespace {

namespace asio = boost::asio;
using std::chrono::milliseconds;

// Runs `ioc` until `done` or 10 s, whichever comes first.
template <class Pred>
void runUntil(asio::io_context& ioc, Pred done) {
  auto give_up = Clock::now() + std::chrono::seconds(10);
  while (!done() && Clock::now() < give_up) ioc.run_for(milliseconds(5));
}

TEST(MailboxTest, AWaitEndsAtItsDeadlineAndNotBefore) {
  asio::io_context ioc(1);
  auto box = std::make_shared<Mailbox>(ioc.get_executor(), true);
  // Three waits on three boxes, with deadlines given out of order.
  std::vector<std::shared_ptr<Mailbox>> boxes = {box, std::make_shared<Mailbox>(ioc.get_executor(), true),
                                                 std::make_shared<Mailbox>(ioc.get_executor(), true)};
  std::vector<milliseconds> after = {milliseconds(60), milliseconds(20), milliseconds(40)};
  std::vector<std::optional<Status>> got(3);
  std::vector<Clock::time_point> ended(3);
  auto t0 = Clock::now();
  for (size_t i = 0; i < 3; ++i) {
    asio::co_spawn(ioc, [&, i]() -> asio::awaitable<void> {
      Result<protocol::Frame> f = co_await boxes[i]->next(t0 + after[i]);
      got[i] = f.status();
      ended[i] = Clock::now();
    }, asio::detached);
  }
  runUntil(ioc, [&] { return got[0] && got[1] && got[2]; });
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(got[i]) << "wait " << i << " never ended";
    EXPECT_EQ(got[i]->code(), Code::kDeadlineExceeded) << got[i]->toString();
    EXPECT_GE(ended[i] - t0, after[i]);
  }
  EXPECT_LT(ended[1], ended[2]);
  EXPECT_LT(ended[2], ended[0]);
}

TEST(MailboxTest, AFrameFromAnotherThreadWakesTheWaiterLongBeforeItsDeadline) {
  asio::io_context ioc(1);
  auto box = std::make_shared<Mailbox>(ioc.get_executor());
  std::optional<Result<protocol::Frame>> got;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { got = co_await box->next(deadline); }, asio::detached);
  ioc.poll();  // parked now
  std::thread pusher([&] {
    protocol::Frame f;
    f.type = protocol::FrameType::kResponse;
    f.payload = "hello";
    box->push(std::move(f));
  });
  runUntil(ioc, [&] { return got.has_value(); });
  pusher.join();
  ASSERT_TRUE(got);
  ASSERT_TRUE(got->ok()) << got->status().toString();
  EXPECT_EQ((*got)->payload, "hello");
  EXPECT_LT(Clock::now(), deadline);
}

TEST(MailboxTest, CloseWakesBothTheFrameAndTheCreditWaiter) {
  asio::io_context ioc(1);
  auto box = std::make_shared<Mailbox>(ioc.get_executor());
  std::optional<Status> frame_status, credit_status;
  auto deadline = Clock::now() + std::chrono::seconds(30);
  // Use up the window first, so that taking credit must wait.
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> {
    Result<size_t> all = co_await box->takeCredit(protocol::kInitialWindow, deadline);
    EXPECT_TRUE(all.ok());
    Result<size_t> more = co_await box->takeCredit(1, deadline);
    credit_status = more.status();
  }, asio::detached);
  asio::co_spawn(ioc, [&]() -> asio::awaitable<void> { frame_status = (co_await box->next(deadline)).status(); },
                 asio::detached);
  ioc.poll();
  std::thread closer([&] { box->close(Unavailable("instance x exited with status 1")); });
  runUntil(ioc, [&] { return frame_status && credit_status; });
  closer.join();
  ASSERT_TRUE(frame_status && credit_status);
  EXPECT_EQ(frame_status->message(), "instance x exited with status 1");
  EXPECT_EQ(credit_status->message(), "instance x exited with status 1");
}

// A waiter nobody will wake, when its io_context goes: destroyed with it
// (as Asio destroys pending operations), not leaked.
TEST(MailboxTest, AWaiterLeftWhenTheContextGoesIsDestroyed) {
  struct Flag {
    bool* destroyed;
    ~Flag() { *destroyed = true; }
  };
  bool destroyed = false;
  std::weak_ptr<Mailbox> weak;
  {
    asio::io_context ioc(1);
    auto box = std::make_shared<Mailbox>(ioc.get_executor());
    weak = box;
    asio::co_spawn(ioc, [box, &destroyed]() -> asio::awaitable<void> {
      Flag flag{&destroyed};
      (void)co_await box->next(Clock::now() + std::chrono::hours(1));
    }, asio::detached);
    ioc.poll();
    box.reset();  // only the parked coroutine holds it now
    EXPECT_FALSE(destroyed);
  }
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(weak.expired());
}

}  // namespace
}  // namespace nubo::runtime
