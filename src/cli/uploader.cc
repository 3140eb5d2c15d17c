#include "cli/uploader.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "cli/api_client.h"
#include "cli/http_client.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/sha256.h"

namespace nubo::cli {
namespace {

constexpr size_t kBatch = 10000;

// Runs `fn(i, client)` for i in [0, n) on `parallel` threads, each with its
// own connection. Stops at the first error.
Status parallelFor(const UploadTarget& t, size_t n, int parallel,
                   const std::function<Status(size_t, HttpClient&)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto work = [&] {
    HttpClient client(t.server, t.token);
    while (!failed) {
      size_t i = next++;
      if (i >= n) return;
      Status s = fn(i, client);
      if (!s.ok()) {
        std::lock_guard lock(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  size_t threads = std::min<size_t>(n, static_cast<size_t>(std::max(1, parallel)));
  std::vector<std::thread> ws;
  for (size_t i = 1; i < threads; ++i) ws.emplace_back(work);
  if (n > 0) work();
  for (auto& w : ws) w.join();
  return first;
}

}  // namespace

Result<UploadPlan> negotiate(HttpClient& client, const Snapshot& snap) {
  UploadPlan plan;
  std::vector<std::string> trees{snap.root};
  std::vector<std::string> files;
  std::unordered_set<std::string> asked;
  std::vector<const TreeObject*> missing_trees;
  while (!trees.empty() || !files.empty()) {
    std::vector<std::string> next_trees, next_files;
    // Batch: trees and files of this level, split to stay under the server's limit.
    for (size_t ti = 0, fi = 0; ti < trees.size() || fi < files.size();) {
      Json req = {{"trees", Json::array()}, {"files", Json::array()}};
      size_t count = 0;
      for (; ti < trees.size() && count < kBatch; ++ti, ++count) req["trees"].push_back(trees[ti]);
      for (; fi < files.size() && count < kBatch; ++fi, ++count) req["files"].push_back(files[fi]);
      ASSIGN_OR_RETURN(Json resp, ApiClient(client).negotiate(req));
      if (!resp.contains("missing_trees") || !resp.contains("missing_files")) {
        return Internal("the server's negotiate answer lacks missing_trees/missing_files");
      }
      for (const auto& h : resp["missing_files"]) {
        std::string hash = h.get<std::string>();
        plan.files.push_back(hash);
        auto it = snap.file_sizes.find(hash);
        if (it != snap.file_sizes.end()) plan.file_bytes += it->second;
      }
      for (const auto& h : resp["missing_trees"]) {
        auto it = snap.trees.find(h.get<std::string>());
        if (it == snap.trees.end()) return Internal("the server asked for a tree this deploy does not have");
        const TreeObject& obj = it->second;
        missing_trees.push_back(&obj);
        plan.tree_bytes += obj.bytes.size();
        for (const auto& c : obj.child_trees) {
          if (asked.insert(c).second) next_trees.push_back(c);
        }
        for (const auto& c : obj.child_files) {
          if (asked.insert(c).second) next_files.push_back(c);
        }
      }
    }
    trees = std::move(next_trees);
    files = std::move(next_files);
  }
  std::stable_sort(missing_trees.begin(), missing_trees.end(),
                   [](const TreeObject* a, const TreeObject* b) { return a->depth > b->depth; });
  for (const auto* t : missing_trees) plan.trees.push_back(t->hash);
  return plan;
}

Status upload(const UploadTarget& target, const Snapshot& snap, const UploadPlan& plan, int parallel,
              const std::function<void(size_t, uint64_t)>& on_progress) {
  std::unordered_map<std::string, const ScannedFile*> by_hash;
  for (const auto& f : snap.files) by_hash.emplace(f.hash, &f);
  std::atomic<size_t> done{0};
  std::atomic<uint64_t> bytes{0};

  auto put = [&](HttpClient& client, std::string_view kind, const std::string& hash, std::string_view body) -> Status {
    RETURN_IF_ERROR(ApiClient(client).putObject(kind, hash, body));
    bytes += body.size();
    if (on_progress) on_progress(++done, bytes.load());
    return Status::Ok();
  };

  RETURN_IF_ERROR(parallelFor(target, plan.files.size(), parallel, [&](size_t i, HttpClient& client) -> Status {
    const std::string& h = plan.files[i];
    auto it = by_hash.find(h);
    if (it == by_hash.end()) return Internal("no file for blob " + h);
    const std::string& rel = it->second->path;
    ASSIGN_OR_RETURN(std::string bytes, readFile(target.dir + "/" + rel));
    if (sha256Hex(bytes) != h) {
      return FailedPrecondition("\"" + rel + "\" changed while it was being deployed; run `nubo deploy` again");
    }
    return put(client, "blobs", h, bytes).withContext("upload " + rel);
  }));

  // Trees level by level, deepest first: a level starts when the one below is stored.
  size_t start = 0;
  while (start < plan.trees.size()) {
    int depth = snap.trees.at(plan.trees[start]).depth;
    size_t end = start;
    while (end < plan.trees.size() && snap.trees.at(plan.trees[end]).depth == depth) ++end;
    RETURN_IF_ERROR(parallelFor(target, end - start, parallel, [&](size_t i, HttpClient& client) -> Status {
      const TreeObject& t = snap.trees.at(plan.trees[start + i]);
      return put(client, "trees", t.hash, t.bytes);
    }));
    start = end;
  }
  return Status::Ok();
}

}  // namespace nubo::cli
