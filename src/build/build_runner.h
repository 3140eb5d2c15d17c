// BuildRunner: runs one builder over one deployment's source and stores
// what it writes as a tree in the blob store.
//
// A builder is a folder `<builders_dir>/<name>/` holding an executable
// `build` (and `detect`; docs/builders.md is the contract). run():
//   1. puts the source tree's files in a fresh folder (hard links to the
//      read-only blobs), shown to the builder read-only;
//   2. runs `build SOURCE OUTPUT CACHE` with an empty output folder, the
//      app's cache folder (kept between builds), a scratch folder, and the
//      manifest as JSON in $NUBO_MANIFEST. Through the launcher: in the
//      sandbox, with the network allowed (package downloads), the host's
//      toolchain (/usr, /bin, /lib) read-only, memory, process and time
//      limits, and no secrets or deployment env in its environment;
//   3. stores the output folder as a tree (blob/directory.h), streaming each
//      file into the store, within max_output_files / max_output_bytes (a
//      build over them fails naming the limit, before the file that crosses
//      it is read).
// The build's folders are removed when it ends; removeLeftovers() removes
// those a crashed server left behind.
// Every line the builder writes, and the runner's own notes, go to `log` as
// they come.
//
// Threading: run() blocks until the build ends; call it on a build thread.
// Several may run at once (each build has its own folders; builds of one
// app share its cache folder, so callers run one build per app at a time).
//
// Errors: kInvalidArgument (a builder name that is not a plain name),
// kNotFound (no such builder), kFailedPrecondition (the builder failed: its
// exit status, or an empty output), kDeadlineExceeded (over the time limit;
// the builder is killed), kResourceExhausted (over the memory or output
// limits), kNotFound when cancel() stopped it (its app was
// removed), and kInternal/kUnavailable from the file system or the store.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "blob/blob_store.h"
#include "common/status.h"
#include "runtime/cgroups.h"
#include "runtime/code_store.h"
#include "runtime/launcher.h"

namespace nubo::build {

struct BuildOptions {
  std::string builders_dir;  // one folder per builder
  std::string work_dir;      // per-build folders, removed after each build
  std::string cache_dir;     // per-app caches, kept
  std::string sdk_dir;       // the SDKs, shown to builders read-only at /nubo/sdk (empty: none)
  std::chrono::milliseconds timeout{10 * 60 * 1000};
  uint64_t memory_bytes = 2ull << 30;
  int pids = 512;
  int tmp_mb = 256;
  uint64_t max_output_files = 100'000;
  uint64_t max_output_bytes = 1ull << 30;
  // Disk a build may fill in its output, scratch and cache folders (checked
  // every second while it runs; over it the build is stopped).
  uint64_t max_disk_bytes = 4ull << 30;
};

struct BuildJob {
  std::string id;           // the deployment's id: names the build's folders and cgroup
  std::string app;          // names the cache
  std::string builder;      // a folder of builders_dir
  std::string source_tree;  // hash of the source's root tree
  std::string manifest_json;
};

struct BuildOutput {
  std::string tree;  // hash of the output's root tree
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t new_files = 0;  // output files the store did not hold before
  double seconds = 0;
};

// `stream` is "stdout", "stderr" or "nubo" (the runner's notes).
using BuildLog = std::function<void(std::string_view stream, std::string_view line)>;

// What the build queue needs of whoever runs builds (BuildRunner; a fake
// in the queue's tests).
class Builder {
 public:
  virtual ~Builder() = default;
  // Blocks until the build ends (errors as BuildRunner's header says).
  virtual Result<BuildOutput> run(const BuildJob& job, const BuildLog& log) = 0;
  // Stops every running build (their run() fails with kUnavailable) and
  // refuses new ones: the server is shutting down.
  virtual void cancelAll() = 0;
  virtual bool cancelled() const = 0;
  // Stops the build of deployment `id` if it runs (its run() fails with
  // kNotFound), and any that starts for it later.
  virtual void cancel(const std::string& id) = 0;
  // Removes an app's build cache (call when no build of it runs).
  virtual void removeCache(const std::string& app) = 0;
  // Removes build folders an earlier run left (it crashed mid-build).
  virtual void removeLeftovers() = 0;
};

class BuildRunner final : public Builder {
 public:
  // `cgroups` may be null (then no out-of-memory report).
  BuildRunner(runtime::Launcher& launcher, blob::BlobStore& blobs, runtime::CodeStore& code,
              runtime::Cgroups* cgroups, BuildOptions options);

  Result<BuildOutput> run(const BuildJob& job, const BuildLog& log) override;
  void cancelAll() override;
  bool cancelled() const override { return cancelled_.load(); }
  void cancel(const std::string& id) override;
  void removeCache(const std::string& app) override;
  void removeLeftovers() override;

  const BuildOptions& options() const { return opts_; }

 private:
  // Runs the builder process for build `id`; its exit status, or
  // kDeadlineExceeded, kUnavailable (shutting down), kNotFound (cancelled).
  // `folders`: the writable folders whose disk use is bounded.
  Result<int> runProcess(const std::string& id, const runtime::LaunchSpec& spec, const BuildLog& log,
                         const std::vector<std::string>& folders);
  bool isCancelled(const std::string& id);

  runtime::Launcher& launcher_;
  blob::BlobStore& blobs_;
  runtime::CodeStore& code_;
  runtime::Cgroups* cgroups_;
  BuildOptions opts_;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::map<pid_t, std::string> running_;  // guarded by mu_: builder pid -> build id
  std::set<std::string> cancelled_ids_;   // guarded by mu_
};

}  // namespace nubo::build
