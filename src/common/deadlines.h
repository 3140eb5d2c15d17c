// Deadlines: the deadlines of many short waits on one io_context, kept by
// one timer, instead of an Asio timer per wait (whose queueing, cancelling
// and construction cost more than the rest of a proxied request's wait).
//
//   Deadlines::Entry e;  e.fire = ...;              // owned by the waiter
//   Deadlines& d = Deadlines::of(executor);
//   d.add(e, deadline, executor);   ... d.remove(e);
//
// Contract:
// - add() links `e` until remove() or until its deadline has passed; then
//   `fire(e)` runs once, on the timer's executor, with `e` already unlinked
//   and the mutex held (so the owner cannot finish removing `e` meanwhile):
//   it should post to the waiter, holding a weak reference to its owner.
// - When the io_context shuts down, every linked entry is unlinked; its
//   owner is kept alive with `hold(e)` and then `drop(e)` runs, outside the
//   mutex, so that a waiter that will never be woken is destroyed (as Asio
//   destroys pending operations) rather than leaked.
// - Late by up to kResolution: fine for request and start-up limits, which
//   are in the tens of milliseconds and more.
// - Thread-safe: one mutex per io_context, held for list links only.
// - An Entry must be removed before it is destroyed.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/execution_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>

namespace nubo {

class Deadlines : public boost::asio::execution_context::service {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kResolution{2};

  struct Entry {
    void (*fire)(Entry*) = nullptr;
    std::shared_ptr<void> (*hold)(Entry*) = nullptr;
    void (*drop)(Entry*) = nullptr;
    Clock::time_point at;
    Entry* prev = nullptr;
    Entry* next = nullptr;
    bool linked = false;  // guarded by the Deadlines' mutex
  };

  // The one for `ex`'s io_context (looked up once per thread and context).
  static Deadlines& of(const boost::asio::any_io_executor& ex);

  void add(Entry& e, Clock::time_point at, const boost::asio::any_io_executor& ex);
  void remove(Entry& e);

  // Asio service plumbing.
  static boost::asio::execution_context::id id;
  explicit Deadlines(boost::asio::execution_context& ctx) : service(ctx) {}
  ~Deadlines() override;

 private:
  void shutdown() override;
  void unlinkLocked(Entry& e);
  void armLocked(Clock::time_point at);
  void onTimer(uint64_t gen);

  std::mutex mu_;
  Entry* head_ = nullptr;  // guarded by mu_
  bool armed_ = false;     // the timer waits for armed_at_; guarded by mu_
  Clock::time_point armed_at_;  // guarded by mu_
  uint64_t gen_ = 0;       // the current timer wait; guarded by mu_
  bool stopped_ = false;   // guarded by mu_
  std::optional<boost::asio::steady_timer> timer_;  // guarded by mu_
};

}  // namespace nubo
