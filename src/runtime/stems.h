// Stems: generic instances started ahead of need, per permission profile,
// so that a cold start specializes one in milliseconds instead of starting
// a process.
//
// - Each profile in use keeps `base` stems ready (the default profile
//   `options.base`, others `options.base_other`, for at most
//   `options.max_profiles` profiles besides the default).
// - Bursts: the pool of a profile grows by one for every stem taken within
//   the last `options.window` (the recent cold-start rate), up to
//   `options.max_total` stems over all profiles (sized from memory), and
//   shrinks back to `base` once quiet (trim(), called by the reaper).
// - take() hands out a ready stem (one on the caller's shard first); when
//   none is ready, the caller claims the next stem to finish warming, and
//   one more starts for it at normal CPU weight (stems started ahead warm
//   up at background weight, which a busy neighbour would starve): it gets
//   whichever is first (at max_total, or with `on_my_shard`: null, and it
//   starts its own).
// - Stems are started on `spawner` (never on a shard), at background CPU
//   weight, on the shards in turn.
//
// Thread-safe.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "runtime/instance.h"

namespace nubo::runtime {

// A permission profile: instances with the same one are interchangeable
// until specialized.
struct StemProfile {
  bool network = false;
  int tmp_mb = 16;
  bool exec = false;  // runtime "exec": the host's toolchain visible, loopback TCP inside
  // Without cgroups the memory limit is an rlimit fixed when the process
  // starts, so it is part of the profile (0: set later, in the cgroup).
  int memory_mb = 0;
  bool operator<(const StemProfile& o) const {
    return std::tie(network, tmp_mb, exec, memory_mb) < std::tie(o.network, o.tmp_mb, o.exec, o.memory_mb);
  }
  bool operator==(const StemProfile& o) const = default;
};

struct StemOptions {
  int base = 2;            // ready stems of the default profile
  int base_other = 1;      // ...of each other profile in use
  int max_profiles = 4;    // other profiles that get stems
  int max_total = 16;      // stems over all profiles, bursts included
  std::chrono::seconds window{60};                  // what "recent" cold starts are
  std::chrono::milliseconds start_timeout{10'000};  // a stem that does not say HELLO by then is dropped
  std::chrono::milliseconds refill_delay{50};       // a stem taken is replaced this much later
};

// The most stems `available_bytes` of memory should hold (each costs about
// a Node process's resident size), within [base, 64].
int stemsForMemory(uint64_t available_bytes, int base);

class Stems {
 public:
  // Starts one generic instance of `profile` on `shard`, on the calling
  // (spawner) thread; `urgent`: a cold start waits for it (normal CPU
  // weight, not the background weight of stems started ahead).
  using Launch = std::function<Result<std::shared_ptr<Instance>>(const StemProfile& profile,
                                                                 boost::asio::io_context& shard, bool urgent)>;

  Stems(StemOptions options, StemProfile default_profile, std::vector<boost::asio::io_context*> shards,
        boost::asio::any_io_executor spawner, Launch launch);

  // Starts the default profile's stems.
  void start();
  // Kills every stem; none starts after.
  void shutdown();

  // A stem of `profile` for a cold start by a caller on `caller`: ready,
  // or claimed while warming (waited for, up to the start timeout); null
  // when there is none (`on_my_shard`: only one on the caller's shard, never
  // waited for). Either way the pool is refilled a moment later.
  boost::asio::awaitable<std::shared_ptr<Instance>> take(const StemProfile& profile,
                                                         boost::asio::any_io_executor caller, bool on_my_shard);

  // Stops ready stems beyond what the recent cold starts call for.
  void trim(Clock::time_point now);

  size_t readyCount();
  // Stems being started now.
  size_t startingCount();

 private:
  struct Claim {
    explicit Claim(boost::asio::any_io_executor ex) : timer(ex) {}
    boost::asio::steady_timer timer;
    std::shared_ptr<Instance> stem;  // guarded by Stems::mu_
    bool done = false;               // guarded by Stems::mu_
  };
  struct Pool {
    std::deque<std::shared_ptr<Instance>> ready;
    int starting = 0;
    int base = 0;
    std::deque<Clock::time_point> taken;     // stems taken within the window
    std::list<std::shared_ptr<Claim>> claims;  // callers waiting for one warming
  };
  // How many stems `p` should hold now.
  int targetLocked(Pool& p, Clock::time_point now);
  int totalLocked() const;
  // The profile's pool, made (with its base) if there is room for it.
  Pool* poolLocked(const StemProfile& profile);
  // Starts stems until the pool holds its target.
  void refill(const StemProfile& profile);
  void refillLocked(const StemProfile& profile);
  // Starts one stem of `p` (`profile`) on the spawner.
  void launchLocked(Pool& p, const StemProfile& profile, bool urgent);
  void refillLater(const StemProfile& profile);

  const StemOptions opts_;
  const StemProfile default_;
  const std::vector<boost::asio::io_context*> shards_;
  boost::asio::any_io_executor spawner_;
  Launch launch_;

  std::mutex mu_;
  std::map<StemProfile, Pool> pools_;  // guarded by mu_
  size_t next_shard_ = 0;              // guarded by mu_
  bool stopped_ = false;               // guarded by mu_
};

}  // namespace nubo::runtime
