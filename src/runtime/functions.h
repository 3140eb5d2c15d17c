// Functions: the instances of deployments whose runtime runs code. Owns the
// per-deployment Pools, the pre-started generic "stem" instances (Stems),
// and the reaper that scales idle pools down (to zero when no alias points
// at the deployment) and forgets pools left empty.
//
// acquire() hands out a Lease on an instance (a cold start takes a stem,
// links the deployment's files, sets its limits, specializes); the caller
// opens a stream on it (gateway/function_proxy.h speaks HTTP over it).
// Knows nothing of HTTP.
//
// Thread-safe.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "logs/log_store.h"
#include "metrics/metrics.h"
#include "runtime/cgroups.h"
#include "runtime/code_store.h"
#include "runtime/launch_recipes.h"
#include "runtime/launcher.h"
#include "runtime/pool.h"
#include "runtime/stems.h"

namespace nubo::runtime {

struct FunctionsOptions {
  std::string node_binary;           // empty: looked up on PATH
  std::string runtime_dir;           // instance.js is written here
  int stems = 2;                     // pre-started generic node instances (default permissions)
  int stems_per_other_profile = 1;   // for each other permission profile in use...
  int max_other_profiles = 4;        // ...up to this many profiles
  int max_stems = 16;                // stems in all, bursts of cold starts included (runtime/stems.h)
  std::chrono::milliseconds reap_interval{500};
  std::chrono::milliseconds start_timeout{10'000};
  std::chrono::milliseconds wait_until{30'000};  // ctx.waitUntil() work after the last response
  int threads = 0;                   // threads running the io_context (0: unknown)
  // The data plane's io_contexts, one thread each (empty: only the one given
  // to create()). Instances are spread over them; a cold start's instance
  // runs on the shard of the request that caused it.
  std::vector<boost::asio::io_context*> shards;
  metrics::Metrics* metrics = nullptr;  // where cold starts count (may be null)
};

class Functions final : public InstanceFactory {
 public:
  // Whether some alias of `app` points at `deployment`.
  using IsAliased = std::function<bool(const std::string& app, const std::string& deployment)>;

  // `cgroups` may be null (no per-instance limits from cgroups).
  static Result<std::unique_ptr<Functions>> create(boost::asio::io_context& ioc, Launcher& launcher,
                                                   CodeStore& code, Cgroups* cgroups, logs::LogStore& logs,
                                                   FunctionsOptions options, IsAliased is_aliased);
  ~Functions() override;

  // Starts the stems and the reaper.
  void start();
  // Stops every instance.
  void shutdown();

  // A lease on a ready instance of `deployment` (the router's spec, made
  // when its table loaded): a free slot, or a cold start (`early` is then
  // called once SPECIALIZE is on its way). Errors as Pool::acquire:
  // kResourceExhausted at capacity, kFailedPrecondition when the code
  // failed to load, others when no instance started.
  boost::asio::awaitable<Result<std::unique_ptr<Lease>>> acquire(const DeploymentSpec& deployment, Deadline deadline,
                                                                 EarlyOpen early = {});
  // A note of the platform's in the deployment's log (stream "nubo").
  void note(const DeploymentSpec& spec, const std::string& request_id, const std::string& text);
  // The phases of the cold start `lease` came from (if it did), as a note.
  void noteColdStart(const std::unique_ptr<Lease>& lease, const DeploymentSpec& spec, const std::string& request_id,
                     Clock::time_point t0);

  boost::asio::awaitable<Result<std::shared_ptr<Instance>>> create(const DeploymentSpec& spec, ColdStart* phases,
                                                                  EarlyOpen early, bool on_my_shard) override;

  // Starts one instance of deployment `d` as its first request would (from a stem),
  // which loads the code and finds its handler; when the manifest has a
  // health.path, GETs it, which must answer 2xx or 3xx within
  // limits.timeout_ms (at most kMaxHealthWait). The instance then joins the deployment's pool (its
  // first request finds it warm; reaped when idle like any other), or is
  // stopped when the check failed. A note of how it went
  // ("started in 3.1 ms ..."), or the failure: kFailedPrecondition when the
  // code or the health path failed (the error's first lines), kDeadlineExceeded
  // when the path did not answer in time, others when no instance started.
  // Reads no store; runs on the caller's shard.
  boost::asio::awaitable<Result<std::string>> probe(DeploymentSpec d);
  static constexpr std::chrono::milliseconds kMaxHealthWait{60'000};

  // The app is gone: its instances are killed (requests in flight end).
  void removeApp(const std::string& app);

  std::vector<InstanceInfo> describe();
  // Every pool's load, and the stems.
  PoolLoad load();
  size_t stemCount();
  size_t stemsStarting();
  // Deployments with a pool (instances, or a request) on this node.
  size_t poolCount();

 private:
  Functions(boost::asio::io_context& ioc, Launcher& launcher, CodeStore& code, Cgroups* cgroups,
            logs::LogStore& logs, FunctionsOptions options, IsAliased is_aliased);
  // poolOf() through this thread's cache of pools (`fresh`: not from it).
  Result<std::shared_ptr<Pool>> poolCached(const DeploymentSpec& spec, bool fresh);
  // The pool of `spec`'s deployment, made with `spec` if there is none;
  // kNotFound when `instance` (if named) is of an app removed since.
  Result<std::shared_ptr<Pool>> poolOf(DeploymentSpec spec, const std::string& instance = "");
  // A new generic instance with the given permissions (stems: the defaults);
  // `background` while it is a stem nobody waits for.
  // `own`: a deployment whose instance is a process of its own (its program,
  // or the exec proxy; its files linked first).
  // `shard`: the io_context it runs on.
  Result<std::shared_ptr<Instance>> launchInstance(const StemProfile& profile, bool background,
                                                   boost::asio::io_context& shard,
                                                   const DeploymentSpec* own = nullptr);
  // launchInstance() on the spawner thread: forking costs milliseconds the
  // data plane should spend serving.
  boost::asio::awaitable<Result<std::shared_ptr<Instance>>> launchOffThread(const StemProfile& profile,
                                                                          boost::asio::io_context& shard);
  // The shard whose executor `ex` is (the first shard if none is).
  boost::asio::io_context& shardOf(const boost::asio::any_io_executor& ex);
  // Runs `work` on the spawner thread; the caller resumes on its own executor.
  template <class F>
  // (on `pool`, the spawner's thread when null)
  auto offThread(F work, boost::asio::thread_pool* pool = nullptr) -> boost::asio::awaitable<decltype(work())>;
  // The profile of instances for `spec` (stems: the manifest's defaults).
  StemProfile profileFor(bool network, int tmp_mb, bool exec, int memory_mb) const;
  boost::asio::awaitable<void> reapLoop();

  boost::asio::io_context& ioc_;
  Launcher& launcher_;
  CodeStore& code_;
  Cgroups* cgroups_;
  logs::LogStore& logs_;
  std::atomic<uint64_t> next_instance_{1};

  // Where an instance's output goes once it is specialized.
  struct LogTarget {
    std::mutex mu;
    std::string app, deployment;  // guarded by mu
    std::shared_ptr<const std::vector<std::string>> redact;  // guarded by mu
    bool gone = false;            // guarded by mu; its app was removed: output is dropped
  };
  FunctionsOptions opts_;
  IsAliased is_aliased_;
  LaunchRecipes recipes_;

  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Pool>> pools_;  // guarded by mu_
  std::unordered_map<std::string, std::shared_ptr<LogTarget>> log_targets_;  // guarded by mu_; by instance id
  bool stopped_ = false;                                          // guarded by mu_

  boost::asio::thread_pool spawner_{1};
  boost::asio::thread_pool files_{2};  // a cold start's links and cgroup writes
  std::unique_ptr<Stems> stems_;  // last: stopped first
};

// The node runtime's JavaScript, embedded in the binary (runtimes/node/*.js):
// file name -> content. instance.js is the entry point.
const std::vector<std::pair<std::string, std::string>>& nodeRuntimeFiles();

}  // namespace nubo::runtime
