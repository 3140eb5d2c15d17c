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
  std::error_code ec;
  std::filesystem::remove_all(root, ec);
  RETURN_IF_ERROR(makeDirs(root));
  return std::unique_ptr<CodeStore>(new CodeStore(std::move(root), blobs));
}

Result<std::string> CodeStore::makeInstanceDir(const std::string& instance) {
  std::string dir = root_ + "/" + instance;
  if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus("create " + dir, errno);
  return dir;
}

Status CodeStore::linkInto(const std::string& root_tree, const std::string& dir) {
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
    std::error_code ec;
    if (f.kind == blob::EntryKind::kExecutable) {
      std::filesystem::copy_file(*src, dest, ec);
      if (ec || ::chmod(dest.c_str(), 0555) != 0) failed = Internal("copy " + f.path + ": " + ec.message());
      return;
    }
    if (::link(src->c_str(), dest.c_str()) != 0) {
      int err = errno;
      // Another file system: copy instead.
      if (err != EXDEV || !std::filesystem::copy_file(*src, dest, ec)) failed = ErrnoStatus("link " + f.path, err);
    }
  }));
  return failed;
}

void CodeStore::removeInstanceDir(const std::string& instance) {
  std::error_code ec;
  std::filesystem::remove_all(root_ + "/" + instance, ec);
}

}  // namespace nubo::runtime
