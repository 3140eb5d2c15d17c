#include "cli/scanner.h"

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <map>
#include <mutex>
#include <thread>

#include "blob/tree.h"
#include "common/fs.h"
#include "common/sha256.h"

namespace nubo::cli {
namespace {

std::string realPath(const std::string& path) {
  char buf[PATH_MAX];
  return ::realpath(path.c_str(), buf) ? std::string(buf) : std::string();
}

// A symbolic link is followed when its target lies inside the folder (it is
// uploaded as a copy of the target); one pointing outside, nowhere, or at a
// folder that holds the link itself is refused, naming the path.
Status followLink(const std::string& root, const std::string& path, const std::string& dir_real, struct stat* st) {
  std::string target = realPath(root + "/" + path);
  if (target.empty() || ::stat(target.c_str(), st) != 0) {
    return InvalidArgument("\"" + path + "\" is a symbolic link to something that does not exist; remove it, or add "
                           "it to .nuboignore");
  }
  if (target != root && target.rfind(root + "/", 0) != 0) {
    return InvalidArgument("\"" + path + "\" is a symbolic link to " + target + ", outside the folder; nubo uploads "
                           "the folder's own files only: replace it with a copy, or add it to .nuboignore");
  }
  if (S_ISDIR(st->st_mode) && (dir_real == target || dir_real.rfind(target + "/", 0) == 0)) {
    return InvalidArgument("\"" + path + "\" is a symbolic link to a folder that contains it (a loop); remove it, or "
                           "add it to .nuboignore");
  }
  return Status::Ok();
}

Status scanDir(const std::string& root, const std::string& rel, const IgnoreRules& rules,
               std::vector<ScannedFile>& out, int depth) {
  if (depth > 256) return InvalidArgument("\"" + rel + "\" is nested deeper than 256 directories");
  std::string abs = rel.empty() ? root : root + "/" + rel;
  std::string abs_real = realPath(abs);
  ASSIGN_OR_RETURN(std::vector<std::string> names, listDir(abs));
  for (const auto& name : names) {
    std::string path = rel.empty() ? name : rel + "/" + name;
    struct stat st {};
    if (::lstat((root + "/" + path).c_str(), &st) != 0) return ErrnoStatus("cannot stat " + path, errno);
    if (S_ISLNK(st.st_mode)) {
      if (rules.ignored(path, false)) continue;
      RETURN_IF_ERROR(followLink(root, path, abs_real, &st));
    }
    bool is_dir = S_ISDIR(st.st_mode);
    if (rules.ignored(path, is_dir)) continue;
    RETURN_IF_ERROR(blob::validateEntryName(name, path));
    if (is_dir) {
      RETURN_IF_ERROR(scanDir(root, path, rules, out, depth + 1));
    } else if (S_ISREG(st.st_mode)) {
      ScannedFile f;
      f.path = path;
      f.key.size = static_cast<uint64_t>(st.st_size);
      f.key.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
      f.key.ino = static_cast<uint64_t>(st.st_ino);
      f.executable = (st.st_mode & 0111) != 0;
      out.push_back(std::move(f));
    } else {
      return InvalidArgument("\"" + path + "\" is not a regular file or directory (a socket, pipe or device); "
                             "add it to .nuboignore");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<ScannedFile>> scan(const std::string& dir, const IgnoreRules& rules) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus("cannot deploy " + dir, errno);
  if (!S_ISDIR(st.st_mode)) return InvalidArgument(dir + " is not a directory; pass the folder to deploy");
  std::vector<ScannedFile> out;
  std::string root = realPath(dir);
  if (root.empty()) return ErrnoStatus("cannot deploy " + dir, errno);
  RETURN_IF_ERROR(scanDir(root, "", rules, out, 0));
  return out;
}

Result<size_t> hash(const std::string& dir, std::vector<ScannedFile>& files, HashCache& cache,
                    int64_t scan_start_ns, const std::function<void(size_t, uint64_t)>& on_progress) {
  std::vector<size_t> todo;
  for (size_t i = 0; i < files.size(); ++i) {
    if (auto h = cache.lookup(files[i].path, files[i].key)) files[i].hash = *h;
    else todo.push_back(i);
  }
  std::atomic<size_t> next{0}, done{0};
  std::atomic<uint64_t> bytes{0};
  std::mutex err_mu;
  Status first_error;
  auto work = [&] {
    for (;;) {
      size_t k = next++;
      if (k >= todo.size()) return;
      ScannedFile& f = files[todo[k]];
      uint64_t size = 0;
      auto h = sha256File(dir + "/" + f.path, &size);
      if (!h.ok()) {
        std::lock_guard lock(err_mu);
        if (first_error.ok()) first_error = h.status();
        return;
      }
      f.hash = *h;
      f.key.size = size;  // what was hashed is what will be uploaded
      bytes += size;
      if (on_progress) on_progress(++done, bytes.load());
    }
  };
  size_t n = std::min<size_t>(todo.size(), std::max(2u, std::thread::hardware_concurrency()));
  std::vector<std::thread> workers;
  for (size_t i = 1; i < n; ++i) workers.emplace_back(work);
  work();
  for (auto& t : workers) t.join();
  RETURN_IF_ERROR(first_error);
  for (const auto& f : files) cache.record(f.path, f.key, f.hash, scan_start_ns);
  return todo.size();
}

Result<Snapshot> snapshot(std::vector<ScannedFile> files) {
  Snapshot s;
  // Directory path -> its entries; "" is the root.
  std::map<std::string, blob::Tree> dirs;
  std::map<std::string, std::vector<std::string>> child_files;
  dirs[""];
  for (const auto& f : files) {
    size_t slash = f.path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : f.path.substr(0, slash);
    std::string name = slash == std::string::npos ? f.path : f.path.substr(slash + 1);
    dirs[parent].entries.push_back(
        {name, f.executable ? blob::EntryKind::kExecutable : blob::EntryKind::kFile, f.key.size, f.hash});
    child_files[parent].push_back(f.hash);
    s.file_sizes[f.hash] = f.key.size;
    s.total_bytes += f.key.size;
    // Make sure every ancestor exists.
    for (std::string p = parent; !p.empty();) {
      size_t up = p.rfind('/');
      p = up == std::string::npos ? "" : p.substr(0, up);
      if (dirs.count(p) && !p.empty()) break;
      dirs[p];
    }
  }
  // Deepest directories first, so children are hashed before parents.
  std::vector<std::string> order;
  for (const auto& [path, t] : dirs) order.push_back(path);
  auto depth = [](const std::string& p) {
    return p.empty() ? 0 : static_cast<int>(std::count(p.begin(), p.end(), '/')) + 1;
  };
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) { return depth(a) > depth(b); });
  std::map<std::string, std::vector<std::string>> child_trees;
  for (const auto& path : order) {
    blob::Tree& t = dirs[path];
    ASSIGN_OR_RETURN(std::string bytes, blob::encodeTree(t));
    std::string h = sha256Hex(bytes);
    TreeObject& obj = s.trees[h];
    if (obj.hash.empty() || obj.depth < depth(path)) {
      obj.hash = h;
      obj.bytes = std::move(bytes);
      obj.depth = depth(path);
      obj.child_trees = child_trees[path];
      obj.child_files = child_files[path];
    }
    if (path.empty()) {
      s.root = h;
      break;
    }
    size_t slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "" : path.substr(0, slash);
    std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
    dirs[parent].entries.push_back({name, blob::EntryKind::kDir, t.totalBytes(), h});
    child_trees[parent].push_back(h);
  }
  s.files = std::move(files);
  return s;
}

}  // namespace nubo::cli
