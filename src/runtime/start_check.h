// StartCheck: a deployment that runs code goes live only once it has been
// seen to start.
//
// A deployment submitted here is STARTING in the store (created so, or
// moved there when its build ended). Its probe (Functions::probe: one
// instance from a stem loads the code and finds its handler; the
// manifest's health.path, if any, must answer 2xx or 3xx) runs on a
// data-plane shard; then the deployment becomes READY, and the alias it was
// deployed to moves, or FAILED with the probe's error. What happened is
// noted in the deployment's build log; what the code printed is in the
// app's log.
//
// - At most `concurrency` probes run at once, one per app (an app's many
//   deploys cannot hold every slot); at most `max_queued` wait, and
//   `max_queued_per_app` of one app (submit() answers kResourceExhausted
//   beyond).
// - The store is written on the checker's own thread, never on a shard.
// - start() checks again what an earlier run left STARTING.
// - shutdown() drops the probes in flight: their deployments stay STARTING
//   and are checked at the next start().
//
// Thread-safe.
#pragma once

#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "logs/log_store.h"
#include "store/metadata_store.h"

namespace nubo::runtime {

struct StartCheckOptions {
  int concurrency = 16;
  size_t max_queued = 256;
  size_t max_queued_per_app = 16;
};

class StartCheck {
 public:
  // How a deployment starts: a note on success, the reason on failure.
  using Probe = std::function<boost::asio::awaitable<Result<std::string>>(store::Deployment d)>;

  // Probes run on `shards` in turn.
  StartCheck(store::MetadataStore& store, logs::LogStore& build_logs, std::vector<boost::asio::io_context*> shards,
             Probe probe, StartCheckOptions options = {});
  ~StartCheck();
  StartCheck(const StartCheck&) = delete;
  StartCheck& operator=(const StartCheck&) = delete;

  // Checks the deployments an earlier run left STARTING.
  void start();
  void shutdown();

  // `d` is STARTING in the store already.
  Status submit(const store::Deployment& d);

 private:
  void launchLocked();
  void finish(const store::Deployment& d, const Result<std::string>& outcome);
  void note(const std::string& deployment, const std::string& text);

  store::MetadataStore& store_;
  logs::LogStore& logs_;
  std::vector<boost::asio::io_context*> shards_;
  Probe probe_;
  StartCheckOptions opts_;

  std::mutex mu_;
  std::deque<store::Deployment> waiting_;  // guarded by mu_
  std::set<std::string> running_;          // guarded by mu_: apps with a probe running
  size_t next_shard_ = 0;                  // guarded by mu_
  bool stopping_ = false;                  // guarded by mu_
  // Shared with the probes on the shards, which may outlast this object.
  struct Alive {
    std::mutex mu;
    bool gone = false;  // guarded by mu
  };
  std::shared_ptr<Alive> alive_ = std::make_shared<Alive>();
  boost::asio::thread_pool writer_{1};     // last: its thread stops first
};

}  // namespace nubo::runtime
