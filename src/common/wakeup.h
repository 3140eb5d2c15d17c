// Wakeup: parks one asynchronous waiter (a coroutine awaiting wait()) until
// someone calls resumeHere() or resumeLater(), with no timer and no reactor
// operation behind it: the cheapest hand-off between two pieces of code on
// one executor.
//
//   co_await wakeup.wait(asio::use_awaitable);    // -> the error_code given to resume
//   ...
//   wakeup.resumeLater(ec);                       // from another handler on the same executor
//
// Contract:
// - At most one waiter at a time (a second wait() while parked is a bug).
// - Not thread-safe: wait(), resume*() and the destructor run on the
//   waiter's executor (one thread, or one strand).
// - resumeHere() runs the waiter before it returns: call it only from a
//   handler that the executor itself invoked (not from inside code that
//   the waiter may re-enter). resumeLater() posts the waiter instead.
// - A parked waiter keeps no work on the io_context: whoever will resume it
//   must have work of its own pending (a socket or timer operation).
// - Destroying a Wakeup (or drop()) with a parked waiter destroys the waiter
//   unrun, as io_context shutdown does with pending operations.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>
#include <memory>

namespace nubo {

class Wakeup {
 public:
  template <class Token>
  auto wait(Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code)>(
        [this](auto handler) { waiter_ = std::make_unique<Holder<decltype(handler)>>(std::move(handler)); }, token);
  }

  bool parked() const { return waiter_ != nullptr; }

  void resumeHere(boost::system::error_code ec = {}) {
    if (auto w = std::move(waiter_)) w->run(ec);
  }
  void resumeLater(boost::system::error_code ec = {}) {
    if (auto w = std::move(waiter_)) w->post(ec);
  }
  void drop() { waiter_.reset(); }

 private:
  struct Waiter {
    virtual ~Waiter() = default;
    virtual void run(boost::system::error_code ec) = 0;
    virtual void post(boost::system::error_code ec) = 0;
  };
  template <class H>
  struct Holder final : Waiter {
    explicit Holder(H h) : handler(std::move(h)) {}
    void run(boost::system::error_code ec) override { std::move(handler)(ec); }
    void post(boost::system::error_code ec) override {
      auto ex = boost::asio::get_associated_executor(handler);
      boost::asio::post(ex, [h = std::move(handler), ec]() mutable { std::move(h)(ec); });
    }
    H handler;
  };
  std::unique_ptr<Waiter> waiter_;
};

}  // namespace nubo
