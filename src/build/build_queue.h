// BuildQueue: deployments waiting for their build, and the build threads
// that run them (BuildRunner) one after the other.
//
// A deployment submitted here is QUEUED in the store. A build thread takes
// it (BUILDING), runs its builder, and ends it with finishBuild(): READY
// with the output tree (the alias it was deployed to moves then) -- or,
// for code, STARTING with it, handed to `start` (runtime/start_check.h),
// which makes it READY once it has started -- or FAILED with the error. What the builder writes, and the queue's own notes, go
// to `logs` under the deployment's id, line by line as they come.
//
// - At most `concurrency` builds run at once, and one per app (an app's
//   builds share its cache). At most `max_queued` wait; submit() answers
//   kResourceExhausted beyond.
// - start() queues again what an earlier run left QUEUED or BUILDING (a
//   crash or restart mid-build): those builds start over, with the alias
//   move they were created with still pending, unless they have been
//   started max_attempts times already (a build that crashes the server
//   would otherwise crash it again at every start): those are FAILED.
//   It also removes build folders the earlier run left.
// - In a fleet (`node` set) each build is claimed in the store (lease
//   "build/<id>" held by this node, renewed every third of `claim_ttl`)
//   when it is submitted, so it runs on one node only; every `sweep` a
//   node claims the builds left QUEUED or BUILDING whose claim ran out (a
//   node that died mid-build) and runs them. A node that loses a claim
//   stops that build and records nothing of it.
// - removeApp() drops an app's waiting builds, stops its running one and
//   removes its build cache (once that build has stopped).
// - shutdown() stops the builds that are running (they stay BUILDING and
//   start over at the next start()) and the threads.
//
// Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "build/build_runner.h"
#include "build/dependency_reuse.h"
#include "logs/log_store.h"
#include "manifest/manifest.h"
#include "metrics/metrics.h"
#include "store/metadata_store.h"

namespace nubo::build {

// The builder a manifest asks for: `build.builder`, else the one named like
// its runtime when it has a `build.command`; empty when it needs no build.
std::string builderFor(const manifest::Manifest& m);

struct QueueOptions {
  int concurrency = 2;
  size_t max_queued = 64;
  int max_attempts = 3;  // starts of one build before an interrupted one is FAILED
  metrics::Metrics* metrics = nullptr;  // where builds count by outcome (may be null)
  std::string node;                     // a fleet's node id (empty: a single node, no claims)
  std::chrono::milliseconds claim_ttl{15'000};
  std::chrono::milliseconds sweep{5'000};
};

class BuildQueue {
 public:
  // Checks a build's output can run (e.g. the entry is in it); an error
  // fails the build with its message.
  using Verify = std::function<Status(const store::Deployment& d, const std::string& output_tree)>;

  // Takes a built deployment that runs code (STARTING in the store, with
  // its output tree) to be started once before it is READY (null: READY at
  // once).
  using Start = std::function<Status(const store::Deployment& d)>;

  // `reuse` (may be null) skips the builds whose dependencies an earlier
  // build of the app installed already (build/dependency_reuse.h).
  BuildQueue(store::MetadataStore& store, Builder& runner, logs::LogStore& logs, Verify verify,
             QueueOptions options, Start start = nullptr, DependencyReuse* reuse = nullptr);
  ~BuildQueue();
  BuildQueue(const BuildQueue&) = delete;
  BuildQueue& operator=(const BuildQueue&) = delete;

  // Starts the build threads; queues deployments left unfinished.
  void start();
  void shutdown();

  // `d` is QUEUED in the store already.
  Status submit(const store::Deployment& d);

  size_t queued() const;

  // The app is gone: none of its builds runs or waits, and its cache goes.
  void removeApp(const std::string& app);

 private:
  void work();
  void build(const store::Deployment& d);
  // A fleet's claims: taken (true) or held by another node.
  bool claim(const std::string& id);
  void release(const std::string& id);
  void tend();  // renews claims, takes over builds whose claim ran out
  void note(const std::string& deployment, const std::string& text);

  store::MetadataStore& store_;
  Builder& runner_;
  logs::LogStore& logs_;
  Verify verify_;
  QueueOptions opts_;
  Start start_;
  DependencyReuse* reuse_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<store::Deployment> waiting_;  // guarded by mu_
  std::map<std::string, std::string> building_;  // guarded by mu_: app -> deployment being built
  std::set<std::string> removed_apps_;           // guarded by mu_: caches to remove when their build stops
  bool stopping_ = false;                  // guarded by mu_
  std::set<std::string> claimed_;          // guarded by mu_: builds this node holds the claim of
  std::set<std::string> lost_;             // guarded by mu_: claims lost while building (their result is dropped)
  std::vector<std::thread> threads_;
};

}  // namespace nubo::build
