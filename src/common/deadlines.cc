#include "common/deadlines.h"

#include <atomic>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#include <vector>

namespace nubo {

namespace asio = boost::asio;

asio::execution_context::id Deadlines::id;

namespace {
// Bumped whenever a Deadlines is destroyed, so that a per-thread
// cache never names a context that is gone (its address may be reused).
std::atomic<uint64_t> g_epoch{0};
}  // namespace

Deadlines::~Deadlines() { g_epoch.fetch_add(1, std::memory_order_acq_rel); }

Deadlines& Deadlines::of(const asio::any_io_executor& ex) {
  thread_local asio::execution_context* cached_ctx = nullptr;
  thread_local Deadlines* cached = nullptr;
  thread_local uint64_t cached_epoch = 0;
  asio::execution_context& ctx = asio::query(ex, asio::execution::context);
  uint64_t epoch = g_epoch.load(std::memory_order_acquire);
  if (&ctx != cached_ctx || epoch != cached_epoch) {
    cached = &asio::use_service<Deadlines>(ctx);  // may construct it, which bumps the epoch
    cached_ctx = &ctx;
    cached_epoch = g_epoch.load(std::memory_order_acquire);
  }
  return *cached;
}

void Deadlines::add(Entry& e, Clock::time_point at, const asio::any_io_executor& ex) {
  std::lock_guard lock(mu_);
  if (stopped_ || e.linked) return;
  e.at = at;
  e.prev = nullptr;
  e.next = head_;
  if (head_) head_->prev = &e;
  head_ = &e;
  e.linked = true;
  if (at == Clock::time_point::max()) return;
  if (!timer_) timer_.emplace(ex);
  if (!armed_ || at + kResolution < armed_at_) armLocked(at);
}

void Deadlines::remove(Entry& e) {
  std::lock_guard lock(mu_);
  if (e.linked) unlinkLocked(e);
}

void Deadlines::unlinkLocked(Entry& e) {
  if (e.prev) e.prev->next = e.next;
  else head_ = e.next;
  if (e.next) e.next->prev = e.prev;
  e.prev = e.next = nullptr;
  e.linked = false;
}

void Deadlines::armLocked(Clock::time_point at) {
  // Never sooner than kResolution from now: waits that end close together
  // are swept together.
  at = std::max(at, Clock::now() + kResolution);
  armed_ = true;
  armed_at_ = at;
  uint64_t gen = ++gen_;
  timer_->expires_at(at);  // cancels a wait armed for later
  timer_->async_wait([this, gen](boost::system::error_code ec) {
    if (!ec) onTimer(gen);
  });
}

void Deadlines::onTimer(uint64_t gen) {
  std::lock_guard lock(mu_);
  if (gen != gen_ || stopped_) return;
  armed_ = false;
  auto now = Clock::now();
  auto earliest = Clock::time_point::max();
  for (Entry* e = head_; e;) {
    Entry* next = e->next;
    if (e->at <= now) {
      unlinkLocked(*e);
      e->fire(e);
    } else {
      earliest = std::min(earliest, e->at);
    }
    e = next;
  }
  if (earliest != Clock::time_point::max()) armLocked(earliest);
}

void Deadlines::shutdown() {
  std::vector<std::pair<Entry*, std::shared_ptr<void>>> left;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    while (Entry* e = head_) {
      unlinkLocked(*e);
      if (auto owner = e->hold(e)) left.emplace_back(e, std::move(owner));
    }
    timer_.reset();  // before the timer's own service is destroyed
  }
  for (auto& [e, owner] : left) e->drop(e);
}

}  // namespace nubo
