#include "runtime/mailbox.h"

#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nubo::runtime {

namespace asio = boost::asio;
using boost::system::error_code;
using protocol::Frame;

namespace {
auto withEc(error_code& ec) { return asio::redirect_error(asio::use_awaitable, ec); }
}  // namespace

Mailbox::Mailbox(asio::any_io_executor caller, bool same_thread)
    : same_thread_(same_thread), caller_(std::move(caller)), deadlines_(Deadlines::of(caller_)) {
  for (Wait* w : {&frames_wait_, &credit_wait_}) {
    w->box = this;
    w->fire = &Mailbox::fireDeadline;
    w->hold = &Mailbox::holdOwner;
    w->drop = &Mailbox::dropWaiter;
  }
}

Mailbox::~Mailbox() {
  // Only a wait that is parked is known to the Deadlines (which may be gone
  // already, with its io_context, when a mailbox outlives it).
  for (Wait* w : {&frames_wait_, &credit_wait_}) {
    if (w->parked) deadlines_.remove(*w);
  }
}

// Deadlines calls these with its lock held (fire, hold) or at shutdown (drop).
void Mailbox::fireDeadline(Deadlines::Entry* e) {
  auto* w = static_cast<Wait*>(e);
  if (auto self = w->box->weak_from_this().lock()) {
    asio::post(self->caller_, [self, w] { w->wakeup.resumeHere(); });
  }
}
std::shared_ptr<void> Mailbox::holdOwner(Deadlines::Entry* e) { return static_cast<Wait*>(e)->box->weak_from_this().lock(); }
// (At shutdown the Deadlines forgets the wait: the mailbox must not tell it again.)
void Mailbox::dropWaiter(Deadlines::Entry* e) {
  auto* w = static_cast<Wait*>(e);
  w->parked = false;
  w->wakeup.drop();
}

asio::awaitable<void> Mailbox::park(Wait& w, Deadline deadline) {
  w.parked = true;
  deadlines_.add(w, deadline, caller_);
  error_code ec;
  co_await w.wakeup.wait(withEc(ec));
  deadlines_.remove(w);
  w.parked = false;
}

void Mailbox::wake(Wait& w) {
  // On the caller's own (and only) thread the waiter can be resumed from here.
  if (same_thread_) {
    w.wakeup.resumeLater();
    return;
  }
  // The waiter belongs to its executor: resume it there.
  asio::post(caller_, [self = shared_from_this(), &w] { w.wakeup.resumeHere(); });
}

void Mailbox::push(Frame f) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    inbox_.push_back(std::move(f));
  }
  wake(frames_wait_);
}

void Mailbox::close(Status why) {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = std::move(why);
  }
  wake(frames_wait_);
  wake(credit_wait_);
}

void Mailbox::addCredit(uint32_t bytes) {
  {
    std::lock_guard lock(mu_);
    credit_ += bytes;
  }
  wake(credit_wait_);
}

void Mailbox::stopSending() {
  {
    std::lock_guard lock(mu_);
    stop_sending_ = true;
  }
  wake(credit_wait_);
}

asio::awaitable<Result<size_t>> Mailbox::takeCredit(size_t want, Deadline deadline) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (closed_) co_return *closed_;
      if (stop_sending_) co_return Unavailable("the response is complete; the rest of the request body is not needed");
      if (credit_ > 0) {
        size_t n = static_cast<size_t>(std::min<uint64_t>(want, credit_));
        credit_ -= n;
        co_return n;
      }
    }
    if (Clock::now() >= deadline) co_return DeadlineExceeded("the function did not read its request body in time");
    co_await park(credit_wait_, deadline);
  }
}

asio::awaitable<Result<Frame>> Mailbox::next(Deadline deadline) {
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (inbox_head_ < inbox_.size()) {
        Frame f = std::move(inbox_[inbox_head_++]);
        if (inbox_head_ == inbox_.size()) {
          inbox_.clear();
          inbox_head_ = 0;
        }
        co_return f;
      }
      if (closed_) co_return *closed_;
    }
    if (Clock::now() >= deadline) co_return DeadlineExceeded("the instance did not answer in time");
    co_await park(frames_wait_, deadline);
  }
}

}  // namespace nubo::runtime
