#include "runtime/stems.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace nubo::runtime {

namespace asio = boost::asio;

int stemsForMemory(uint64_t available_bytes, int base) {
  // An eighth of the memory free at start-up, at about 64 MiB a stem.
  uint64_t fit = available_bytes / 8 / (64ull << 20);
  return static_cast<int>(std::clamp<uint64_t>(fit, static_cast<uint64_t>(std::max(base, 0)), 64));
}

Stems::Stems(StemOptions options, StemProfile default_profile, std::vector<asio::io_context*> shards,
             asio::any_io_executor spawner, Launch launch)
    : opts_(options), default_(default_profile), shards_(std::move(shards)), spawner_(std::move(spawner)),
      launch_(std::move(launch)) {}

void Stems::start() { refill(default_); }

void Stems::shutdown() {
  std::map<StemProfile, Pool> pools;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    pools.swap(pools_);
  }
  for (auto& [profile, pool] : pools) {
    for (auto& s : pool.ready) s->kill();
    for (auto& c : pool.claims) asio::post(c->timer.get_executor(), [c] { c->timer.cancel(); });
  }
}

size_t Stems::readyCount() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [profile, pool] : pools_) n += pool.ready.size();
  return n;
}

size_t Stems::startingCount() {
  std::lock_guard lock(mu_);
  size_t n = 0;
  for (const auto& [profile, pool] : pools_) n += static_cast<size_t>(pool.starting);
  return n;
}

int Stems::totalLocked() const {
  int n = 0;
  for (const auto& [profile, pool] : pools_) n += static_cast<int>(pool.ready.size()) + pool.starting;
  return n;
}

int Stems::targetLocked(Pool& p, Clock::time_point now) {
  while (!p.taken.empty() && p.taken.front() < now - opts_.window) p.taken.pop_front();
  return std::min(p.base + static_cast<int>(p.taken.size()), std::max(p.base, opts_.max_total));
}

Stems::Pool* Stems::poolLocked(const StemProfile& profile) {
  if (stopped_) return nullptr;
  auto it = pools_.find(profile);
  if (it != pools_.end()) return &it->second;
  bool is_default = profile == default_;
  if (!is_default && static_cast<int>(pools_.size()) > opts_.max_profiles) return nullptr;
  Pool& p = pools_[profile];
  p.base = is_default ? opts_.base : std::min(opts_.base, opts_.base_other);
  return &p;
}

void Stems::refill(const StemProfile& profile) {
  std::lock_guard lock(mu_);
  refillLocked(profile);
}

void Stems::refillLocked(const StemProfile& profile) {
  Pool* p = poolLocked(profile);
  if (!p) return;
  int target = targetLocked(*p, Clock::now());
  // Past the base, bursts share max_total over all profiles; the callers
  // waiting for one are served first.
  int want = std::max(target, static_cast<int>(p->claims.size()));
  while (static_cast<int>(p->ready.size()) + p->starting < want) {
    bool within_base = static_cast<int>(p->ready.size()) + p->starting < p->base;
    if (!within_base && totalLocked() >= opts_.max_total) break;
    launchLocked(*p, profile, /*urgent=*/false);
  }
}

void Stems::launchLocked(Pool& p, const StemProfile& profile, bool urgent) {
  p.starting++;
  asio::io_context* shard = shards_[next_shard_++ % shards_.size()];  // stems take turns
  asio::co_spawn(
      spawner_,
      [this, profile, shard, urgent]() -> asio::awaitable<void> {
        auto inst = launch_(profile, *shard, urgent);
        Status s = inst.status();
        if (inst.ok()) s = co_await (*inst)->waitHello(Clock::now() + opts_.start_timeout);
        std::lock_guard lock(mu_);
        auto it = pools_.find(profile);
        if (it != pools_.end()) it->second.starting--;
        if (!s.ok()) {
          spdlog::warn("could not start a stem instance: {}", s.message());
          co_return;
        }
        if (stopped_ || it == pools_.end()) {
          (*inst)->kill();
          co_return;
        }
        Pool& pool = it->second;
        if (!pool.claims.empty()) {
          // A cold start is waiting for this one.
          auto claim = pool.claims.front();
          pool.claims.pop_front();
          claim->stem = *inst;
          claim->done = true;
          asio::post(claim->timer.get_executor(), [claim] { claim->timer.cancel(); });
          co_return;
        }
        pool.ready.push_back(*inst);
      },
      asio::detached);
}

void Stems::refillLater(const StemProfile& profile) {
  auto t = std::make_shared<asio::steady_timer>(spawner_, opts_.refill_delay);
  t->async_wait([this, t, profile](boost::system::error_code ec) {
    if (!ec) refill(profile);
  });
}

asio::awaitable<std::shared_ptr<Instance>> Stems::take(const StemProfile& profile, asio::any_io_executor caller,
                                                      bool on_my_shard) {
  std::shared_ptr<Claim> claim;
  {
    std::lock_guard lock(mu_);
    Pool* p = poolLocked(profile);
    if (!p) co_return nullptr;
    p->taken.push_back(Clock::now());  // the recent cold-start rate sizes the pool
    if (static_cast<int>(p->taken.size()) > opts_.max_total) p->taken.pop_front();  // more would not count
    auto& ready = p->ready;
    std::erase_if(ready, [](const auto& s) { return s->state() != Instance::State::kStem; });
    // One on the caller's shard, else (unless it must be here) any.
    auto pick = std::find_if(ready.begin(), ready.end(), [&](const auto& s) { return s->executor() == caller; });
    if (pick == ready.end() && !on_my_shard) pick = ready.begin();
    if (pick != ready.end()) {
      std::shared_ptr<Instance> stem = *pick;
      ready.erase(pick);
      // Replaced a moment after this cold start, so that starting Node does
      // not compete with it.
      refillLater(profile);
      co_return stem;
    }
    // None ready: the pool grows (this cold start counted), and the caller
    // takes the next stem to warm up, one more starting for it at normal weight.
    if (!on_my_shard) {
      bool room = totalLocked() < opts_.max_total;
      if (room || p->starting > static_cast<int>(p->claims.size())) {
        claim = std::make_shared<Claim>(caller);
        p->claims.push_back(claim);
        if (room) launchLocked(*p, profile, /*urgent=*/true);
      }
    }
    refillLocked(profile);
  }
  if (!claim) co_return nullptr;
  claim->timer.expires_after(opts_.start_timeout);
  boost::system::error_code ec;
  co_await claim->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  std::shared_ptr<Instance> stem;
  {
    std::lock_guard lock(mu_);
    if (claim->done) {
      stem = claim->stem;
    } else if (auto it = pools_.find(profile); it != pools_.end()) {
      it->second.claims.remove(claim);
    }
  }
  if (stem) refillLater(profile);
  co_return stem;
}

void Stems::trim(Clock::time_point now) {
  std::vector<std::shared_ptr<Instance>> extra;
  {
    std::lock_guard lock(mu_);
    for (auto& [profile, pool] : pools_) {
      int target = targetLocked(pool, now);
      while (static_cast<int>(pool.ready.size()) > target) {
        extra.push_back(pool.ready.front());
        pool.ready.pop_front();
      }
    }
  }
  for (auto& s : extra) s->kill();
}

}  // namespace nubo::runtime
