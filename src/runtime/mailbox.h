// Mailbox: the frames of one instance stream, handed from the instance's
// strand to the one caller waiting for them, and the stream's send window.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "common/deadlines.h"
#include "common/status.h"
#include "common/wakeup.h"
#include "runtime/protocol.h"

namespace nubo::runtime {

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;

// Milliseconds since `t`, for the notes of how long things took.
inline double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

// Frames for one stream, handed from the instance strand to one waiting
// caller, and the stream's send window (body bytes the instance accepts).
// Always owned by a shared_ptr: a wake-up posted to the caller keeps it alive.
//
// A waiting caller parks on a Wakeup, and its deadline is kept by the
// io_context's Deadlines (common/deadlines.h): no Asio timer per request.
// The caller's executor must run one handler at a time (one thread, or a
// strand), so that a wake-up posted to it finds the caller parked.
class Mailbox : public std::enable_shared_from_this<Mailbox> {
 public:
  // `same_thread`: every push, close and credit comes from the one thread
  // that also runs the caller (then a wake-up needs no hand-off).
  explicit Mailbox(boost::asio::any_io_executor caller, bool same_thread = false);
  ~Mailbox();
  void push(protocol::Frame f);
  void close(Status why);
  // The next frame; kDeadlineExceeded at `deadline`, the close status after close().
  boost::asio::awaitable<Result<protocol::Frame>> next(Deadline deadline);

  // A WINDOW from the instance.
  void addCredit(uint32_t bytes);
  // Waits until the instance accepts more body bytes and takes up to `want`
  // of them. Fails at `deadline`, after close(), or after stopSending().
  boost::asio::awaitable<Result<size_t>> takeCredit(size_t want, Deadline deadline);
  void stopSending();

 private:
  // One parked caller (for frames, or for credit) and its deadline.
  struct Wait : Deadlines::Entry {
    Mailbox* box = nullptr;
    Wakeup wakeup;        // on the caller's executor
    bool parked = false;  // between add() and remove(); the caller's only
  };
  // Parks until wake(w), `deadline`, or (spuriously) earlier: callers re-check.
  boost::asio::awaitable<void> park(Wait& w, Deadline deadline);
  void wake(Wait& w);
  static void fireDeadline(Deadlines::Entry* e);
  static std::shared_ptr<void> holdOwner(Deadlines::Entry* e);
  static void dropWaiter(Deadlines::Entry* e);

  const bool same_thread_;
  const boost::asio::any_io_executor caller_;
  Deadlines& deadlines_;
  std::mutex mu_;
  std::vector<protocol::Frame> inbox_;  // from inbox_head_ on; guarded by mu_
  size_t inbox_head_ = 0;               // guarded by mu_
  std::optional<Status> closed_;        // guarded by mu_
  uint64_t credit_ = protocol::kInitialWindow;  // guarded by mu_
  bool stop_sending_ = false;                   // guarded by mu_
  Wait frames_wait_;
  Wait credit_wait_;
};

}  // namespace nubo::runtime
