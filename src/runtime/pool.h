// Pool: the instances of one deployment on this node.
//
// acquire() hands out a Lease on the least-loaded ready instance with a free
// slot (each takes up to `concurrency` requests at once), one on the
// caller's shard (executor) if there is one; when all are busy it starts
// another (on the caller's shard), up to `max_instances`. A shard with no
// instance of its own gets one, started in the background, once the
// instance elsewhere that serves it is busy (a quarter of its slots); beyond that the caller waits in
// a bounded queue for a bounded time, then gets kResourceExhausted (503 with
// Retry-After at the edge). A dead instance is dropped and replaced on the
// next acquire. reap() stops instances idle longer than `idle_ttl`, keeping
// `min_instances` while the deployment is aliased (scale to zero otherwise).
//
// Thread-safe; the mutex is never held across a suspension or I/O.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/runtime_kind.h"
#include "runtime/instance.h"

namespace nubo::runtime {

struct PoolLimits {
  int concurrency = 32;
  int max_instances = 4;
  int min_instances = 0;
  std::chrono::milliseconds timeout{10'000};
  std::chrono::milliseconds idle_ttl{300'000};
  // How long ctx.waitUntil() work may keep an instance after its last
  // response; then the instance is stopped.
  std::chrono::milliseconds wait_until{30'000};
  size_t queue_limit = 1024;
  std::chrono::milliseconds queue_timeout{10'000};
};

struct DeploymentSpec {
  std::string id;
  std::string app;
  RuntimeKind kind = RuntimeKind::kNode;
  std::string root_tree;
  std::string entry;
  std::map<std::string, std::string> env;
  // Values its functions must not be seen printing (its secrets): in the
  // logs each becomes "[secret]".
  std::shared_ptr<const std::vector<std::string>> redact;
  PoolLimits limits;
  bool network = false;
  int tmp_mb = 16;
  int memory_mb = 128;
  double cpu = 1.0;    // the app's CPU weight (limits.cpu)
  uint64_t files = 0;  // in the deployment's tree
  std::string health_path;  // the manifest's health.path (probe() asks it)
  uint32_t metrics_app = 0;  // the app's id in the metrics (metrics::Metrics::app())
};

// How a cold start went, in milliseconds, for logs and metrics.
struct ColdStart {
  bool from_stem = false;
  double acquire_ms = 0;     // taking a stem, or spawning and waiting for HELLO
  double files_ms = 0;       // materializing the deployment's files
  double specialize_ms = 0;  // SPECIALIZE until READY
  double load_ms = 0;        // of which: the runtime loading the code
};

// Called with an instance whose code is still loading, so the request that
// caused the cold start can be sent right behind SPECIALIZE (the runtime
// serves it once loaded) instead of a round trip later.
using EarlyOpen = std::function<void(const std::shared_ptr<Instance>&)>;

class InstanceFactory {
 public:
  virtual ~InstanceFactory() = default;
  // A specialized, ready instance of `spec`, on the caller's shard when it
  // can be (a waiting stem elsewhere may serve instead, unless `on_my_shard`);
  // `early` (if set) is called once SPECIALIZE is on its way.
  virtual boost::asio::awaitable<Result<std::shared_ptr<Instance>>> create(const DeploymentSpec& spec,
                                                                          ColdStart* phases, EarlyOpen early,
                                                                          bool on_my_shard = false) = 0;
};

class Pool;

class Lease {
 public:
  Lease(std::shared_ptr<Pool> pool, std::shared_ptr<Instance> inst, std::optional<ColdStart> cold)
      : pool_(std::move(pool)), inst_(std::move(inst)), cold_(cold) {}
  ~Lease();
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  Instance& instance() { return *inst_; }
  const std::optional<ColdStart>& coldStart() const { return cold_; }

 private:
  std::shared_ptr<Pool> pool_;
  std::shared_ptr<Instance> inst_;
  std::optional<ColdStart> cold_;
};

struct InstanceInfo {
  std::string deployment;
  std::string app;
  pid_t pid = -1;
  std::string state;
  int inflight = 0;
  double age_s = 0;
  double idle_s = 0;
  uint64_t rss_bytes = 0;
};

// How busy instances are, summed (for metrics).
struct PoolLoad {
  int starting = 0;   // being started for requests
  int idle = 0;       // ready, no request
  int busy = 0;       // ready, with requests
  int stopping = 0;   // finishing before they stop
  int stems = 0;      // pre-started, not yet any deployment's (Functions only)
  int inflight = 0;   // requests on instances
  int queued = 0;     // requests waiting for a slot
  void add(const PoolLoad& o) {
    starting += o.starting, idle += o.idle, busy += o.busy, stopping += o.stopping, stems += o.stems;
    inflight += o.inflight, queued += o.queued;
  }
};

class Pool : public std::enable_shared_from_this<Pool> {
 public:
  Pool(DeploymentSpec spec, InstanceFactory& factory) : spec_(std::move(spec)), factory_(factory) {}

  // `early` is passed to the factory when this call starts an instance.
  boost::asio::awaitable<Result<std::unique_ptr<Lease>>> acquire(Deadline deadline, EarlyOpen early = {});
  // Takes a ready instance of this deployment started elsewhere (its start
  // check) as if it had started it; false (and the instance is the
  // caller's to stop) when stopped or full.
  bool adopt(std::shared_ptr<Instance> inst);
  // Stops idle instances; returns how many remain.
  // Instances whose waitUntil() work outlasts limits.wait_until go too
  // (counted in `*overran` when given).
  size_t reap(Clock::time_point now, bool aliased, size_t* overran = nullptr);
  // Stops every instance (kill: at once, without letting them finish).
  void stopAll(bool kill = false);
  // Retires a pool with no instance, none starting and nobody waiting (its
  // owner then forgets it; a later request makes a new one): true if it did.
  bool retireIfIdle();
  // Retired (not stopped with its app): acquire() answers kUnavailable, and
  // the caller asks its owner for the deployment's pool again.
  bool retired();
  std::vector<InstanceInfo> describe();
  PoolLoad load();
  const DeploymentSpec& spec() const { return spec_; }

 private:
  friend class Lease;
  struct Entry {
    std::shared_ptr<Instance> inst;
    int leases = 0;
    Clock::time_point last_used = Clock::now();
  };
  struct Waiter {
    explicit Waiter(boost::asio::any_io_executor ex) : timer(ex) {}
    boost::asio::steady_timer timer;
    bool woken = false;  // guarded by Pool::mu_
  };
  void release(Instance* inst);
  // Requests on another shard an instance takes before that shard gets one
  // of its own.
  int localAfter() const;
  // Starts an instance on `shard` in the background.
  void startOnLocked(const boost::asio::any_io_executor& shard);
  void wakeOneLocked();
  void wakeAllLocked();
  void dropDeadLocked();

  const DeploymentSpec spec_;
  InstanceFactory& factory_;
  std::mutex mu_;
  std::vector<Entry> entries_;                      // guarded by mu_
  int starting_ = 0;                                // guarded by mu_
  std::vector<boost::asio::any_io_executor> starting_on_;  // guarded by mu_: shards with a start under way
  bool stopped_ = false;                            // guarded by mu_
  bool retired_ = false;                            // guarded by mu_: stopped by retireIfIdle()
  std::list<std::shared_ptr<Waiter>> waiters_;      // guarded by mu_
};

}  // namespace nubo::runtime
