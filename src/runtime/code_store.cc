#include "runtime/code_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>

#include "blob/tree.h"
#include "common/fs.h"

namespace nubo::runtime {

Result<std::unique_ptr<CodeStore>> CodeStore::create(std::string root, blob::BlobStore& blobs) {
  RETURN_IF_ERROR(makeDirs(root));
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root, ec)) {
    if (e.path().filename().string().rfind(".tmp-", 0) == 0) std::filesystem::remove_all(e.path(), ec);
  }
  return std::unique_ptr<CodeStore>(new CodeStore(std::move(root), blobs));
}

Status CodeStore::build(const std::string& dir, const std::string& root_tree) {
  RETURN_IF_ERROR(makeDirs(dir));
  Status failed;
  RETURN_IF_ERROR(blob::walkTree(root_tree, blob::loaderFor(blobs_), [&](blob::FlatFile&& f) {
    if (!failed.ok()) return;
    std::string dest = dir + "/" + f.path;
    if (auto s = makeDirs(dirName(dest)); !s.ok()) {
      failed = s;
      return;
    }
    auto src = blobs_.localPath(f.hash);
    if (!src.ok()) {
      failed = src.status();
      return;
    }
    if (f.kind == blob::EntryKind::kExecutable) {
      std::error_code ec;
      std::filesystem::copy_file(*src, dest, ec);
      if (ec || ::chmod(dest.c_str(), 0555) != 0) failed = Internal("copy " + f.path + ": " + ec.message());
      return;
    }
    if (::link(src->c_str(), dest.c_str()) != 0) {
      // Another file system: copy instead.
      std::error_code ec;
      if (errno != EXDEV || !std::filesystem::copy_file(*src, dest, ec)) {
        failed = ErrnoStatus("link " + f.path, errno);
      }
    }
  }));
  return failed;
}

Result<std::string> CodeStore::materialize(const std::string& deployment, const std::string& root_tree) {
  std::string dir = root_ + "/" + deployment;
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) return dir;
  std::shared_ptr<std::mutex> m;
  {
    std::lock_guard lock(mu_);
    auto& slot = building_[deployment];
    if (!slot) slot = std::make_shared<std::mutex>();
    m = slot;
  }
  std::lock_guard build_lock(*m);
  if (::stat(dir.c_str(), &st) == 0) return dir;
  static std::atomic<uint64_t> seq{0};
  std::string tmp = root_ + "/.tmp-" + deployment + "-" + std::to_string(seq++);
  Status s = build(tmp, root_tree);
  if (s.ok() && ::rename(tmp.c_str(), dir.c_str()) != 0) s = ErrnoStatus("rename " + tmp, errno);
  if (!s.ok()) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    return s.withContext("preparing the files of deployment " + deployment);
  }
  return dir;
}

void CodeStore::remove(const std::string& deployment) {
  std::error_code ec;
  std::filesystem::remove_all(root_ + "/" + deployment, ec);
}

}  // namespace nubo::runtime
