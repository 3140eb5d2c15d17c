#include "runtime/pool.h"

#include <unistd.h>

#include <algorithm>
#include <fstream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nubo::runtime {

namespace asio = boost::asio;

Lease::~Lease() { pool_->release(inst_.get()); }

void Pool::wakeOneLocked() {
  while (!waiters_.empty()) {
    auto w = waiters_.front();
    waiters_.pop_front();
    if (w->woken) continue;
    w->woken = true;
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
    return;
  }
}

void Pool::wakeAllLocked() {
  for (auto& w : waiters_) {
    if (w->woken) continue;
    w->woken = true;
    asio::post(w->timer.get_executor(), [w] { w->timer.cancel(); });
  }
  waiters_.clear();
}

void Pool::dropDeadLocked() {
  std::erase_if(entries_, [](const Entry& e) { return e.inst->state() == Instance::State::kDead && e.leases == 0; });
}

bool Pool::adopt(std::shared_ptr<Instance> inst) {
  std::lock_guard lock(mu_);
  if (stopped_ || static_cast<int>(entries_.size()) + starting_ >= spec_.limits.max_instances) return false;
  entries_.push_back(Entry{std::move(inst), 0, Clock::now()});
  wakeAllLocked();
  return true;
}

asio::awaitable<Result<std::unique_ptr<Lease>>> Pool::acquire(Deadline deadline, EarlyOpen early) {
  auto self = shared_from_this();
  const asio::any_io_executor caller = co_await asio::this_coro::executor;
  for (;;) {
    std::shared_ptr<Waiter> waiter;
    bool start_one = false;
    {
      std::lock_guard lock(mu_);
      if (stopped_) co_return Unavailable("the pool of " + spec_.id + " was retired");
      dropDeadLocked();
      // The least busy instance with a free slot, on the caller's shard if
      // there is one: an instance elsewhere costs a hand-off between threads
      // each way.
      Entry* local = nullptr;
      Entry* other = nullptr;
      bool shard_has_one = std::find(starting_on_.begin(), starting_on_.end(), caller) != starting_on_.end();
      for (auto& e : entries_) {
        bool here = e.inst->executor() == caller;
        shard_has_one |= here;
        if (e.inst->state() != Instance::State::kReady || e.leases >= spec_.limits.concurrency) continue;
        Entry*& best = here ? local : other;
        if (!best || e.leases < best->leases) best = &e;
      }
      int live = static_cast<int>(entries_.size()) + starting_;
      if (!shard_has_one && other && other->leases >= localAfter() && live < spec_.limits.max_instances) {
        // Busy elsewhere, and none here: this shard gets an instance of its
        // own, started while the other one still serves. (Past that, a
        // shard's instances grow as usual: when all are busy.)
        startOnLocked(caller);
      }
      if (Entry* best = local ? local : other) {
        best->leases++;
        co_return std::make_unique<Lease>(self, best->inst, std::nullopt);
      }
      live = static_cast<int>(entries_.size()) + starting_;
      // Instances being started will take `concurrency` requests each: wait
      // for them rather than starting more than the burst needs.
      size_t coming = static_cast<size_t>(starting_) * static_cast<size_t>(spec_.limits.concurrency);
      if (live < spec_.limits.max_instances && waiters_.size() >= coming) {
        starting_++;
        start_one = true;
      } else if (waiters_.size() >= spec_.limits.queue_limit) {
        // (also reached when waiting for a starting instance with a full queue)
        co_return ResourceExhausted("deployment " + spec_.id + " is at capacity (" +
                                    std::to_string(spec_.limits.max_instances) + " instances, queue full)");
      } else {
        waiter = std::make_shared<Waiter>(co_await asio::this_coro::executor);
        waiters_.push_back(waiter);
      }
    }
    if (start_one) {
      ColdStart phases;
      Result<std::shared_ptr<Instance>> inst = co_await factory_.create(spec_, &phases, std::move(early));
      std::lock_guard lock(mu_);
      starting_--;
      if (!inst.ok()) {
        wakeAllLocked();  // those waiting for this one try again themselves
        co_return inst.status();
      }
      if (stopped_) {
        (*inst)->stop();
        co_return Unavailable("the pool of " + spec_.id + " was retired");
      }
      entries_.push_back(Entry{*inst, 1, Clock::now()});
      // More capacity: let waiters look again.
      wakeAllLocked();
      co_return std::make_unique<Lease>(self, *inst, phases);
    }
    Deadline until = std::min(deadline, Clock::now() + spec_.limits.queue_timeout);
    waiter->timer.expires_at(until);
    boost::system::error_code ec;
    co_await waiter->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    {
      std::lock_guard lock(mu_);
      if (!waiter->woken) {
        waiter->woken = true;  // timed out: leave the queue
        waiters_.remove(waiter);
        co_return ResourceExhausted("all " + std::to_string(spec_.limits.max_instances) + " instances of deployment " +
                                    spec_.id + " stayed busy; try again shortly");
      }
    }
  }
}

int Pool::localAfter() const { return std::max(2, spec_.limits.concurrency / 4); }

void Pool::startOnLocked(const asio::any_io_executor& shard) {
  starting_++;
  starting_on_.push_back(shard);
  asio::co_spawn(
      shard,
      [self = shared_from_this(), shard]() -> asio::awaitable<void> {
        ColdStart phases;
        Result<std::shared_ptr<Instance>> inst = co_await self->factory_.create(self->spec_, &phases, {}, /*on_my_shard=*/true);
        std::lock_guard lock(self->mu_);
        self->starting_--;
        self->starting_on_.erase(std::find(self->starting_on_.begin(), self->starting_on_.end(), shard));
        if (!inst.ok()) co_return;  // requests go on to the instances there are
        if (self->stopped_) {
          (*inst)->stop();
          co_return;
        }
        self->entries_.push_back(Entry{*inst, 0, Clock::now()});
        self->wakeAllLocked();
      },
      asio::detached);
}

void Pool::release(Instance* inst) {
  std::lock_guard lock(mu_);
  for (auto& e : entries_) {
    if (e.inst.get() == inst) {
      e.leases--;
      e.last_used = Clock::now();
      break;
    }
  }
  wakeOneLocked();
}

size_t Pool::reap(Clock::time_point now, bool aliased, size_t* overran) {
  std::vector<std::shared_ptr<Instance>> to_stop;
  size_t remaining;
  {
    std::lock_guard lock(mu_);
    dropDeadLocked();
    size_t keep = aliased ? static_cast<size_t>(spec_.limits.min_instances) : 0;
    // waitUntil() work past its time: stopped whatever the pool keeps.
    for (auto& e : entries_) {
      if (e.leases == 0 && e.inst->waitUntilPending() > 0 && now - e.last_used >= spec_.limits.wait_until) {
        to_stop.push_back(e.inst);
      }
    }
    if (overran) *overran = to_stop.size();
    // Oldest idle first.
    std::vector<Entry*> idle;
    for (auto& e : entries_) {
      if (e.leases == 0 && e.inst->waitUntilPending() == 0 && now - e.last_used >= spec_.limits.idle_ttl) {
        idle.push_back(&e);
      }
    }
    std::sort(idle.begin(), idle.end(), [](Entry* a, Entry* b) { return a->last_used < b->last_used; });
    size_t live = entries_.size() - to_stop.size();
    for (Entry* e : idle) {
      if (live <= keep) break;
      to_stop.push_back(e->inst);
      live--;
    }
    std::erase_if(entries_, [&](const Entry& e) {
      return std::find(to_stop.begin(), to_stop.end(), e.inst) != to_stop.end();
    });
    remaining = entries_.size() + static_cast<size_t>(starting_);
  }
  for (auto& i : to_stop) i->stop();
  return remaining;
}

bool Pool::retireIfIdle() {
  std::lock_guard lock(mu_);
  if (stopped_ || !entries_.empty() || starting_ > 0 || !waiters_.empty()) return false;
  stopped_ = true;
  retired_ = true;
  return true;
}

bool Pool::retired() {
  std::lock_guard lock(mu_);
  return retired_;
}

void Pool::stopAll(bool kill) {
  std::vector<Entry> all;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    all.swap(entries_);
    wakeAllLocked();
  }
  for (auto& e : all) {
    if (kill) e.inst->kill();
    else e.inst->stop();
  }
}

PoolLoad Pool::load() {
  std::lock_guard lock(mu_);
  PoolLoad l;
  l.starting = starting_;
  l.queued = static_cast<int>(waiters_.size());
  for (const auto& e : entries_) {
    switch (e.inst->state()) {
      case Instance::State::kReady: (e.leases ? l.busy : l.idle)++; break;
      case Instance::State::kStopping: l.stopping++; break;
      case Instance::State::kDead: break;
      default: l.starting++; break;
    }
    l.inflight += e.leases;
  }
  return l;
}

namespace {
// Resident memory of a process, from /proc (0 when it is gone).
uint64_t rssOf(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  if (!(statm >> size >> resident)) return 0;
  return resident * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}
}  // namespace

std::vector<InstanceInfo> Pool::describe() {
  std::lock_guard lock(mu_);
  std::vector<InstanceInfo> out;
  auto now = Clock::now();
  for (const auto& e : entries_) {
    InstanceInfo i;
    i.deployment = spec_.id;
    i.app = spec_.app;
    i.pid = e.inst->pid();
    i.state = std::string(stateName(e.inst->state()));
    i.inflight = e.leases;
    i.age_s = std::chrono::duration<double>(now - e.inst->startedAt()).count();
    i.idle_s = e.leases ? 0 : std::chrono::duration<double>(now - e.last_used).count();
    i.rss_bytes = rssOf(i.pid);
    out.push_back(std::move(i));
  }
  return out;
}

}  // namespace nubo::runtime
