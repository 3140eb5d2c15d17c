#include "runtime/code_store.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <filesystem>

#include "blob/tree.h"
#include "common/fs.h"
#include "common/ids.h"

namespace nubo::runtime {

Status copyFile(const std::string& src, const std::string& dest, mode_t mode) {
  UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return ErrnoStatus("open " + src, errno);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return ErrnoStatus("stat " + src, errno);
  UniqueFd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!out.valid()) return ErrnoStatus("create " + dest, errno);
  if (::ioctl(out.get(), FICLONE, in.get()) == 0) return Status::Ok();
  off_t offset = 0;
  while (offset < st.st_size) {
    ssize_t n = ::sendfile(out.get(), in.get(), &offset, static_cast<size_t>(st.st_size - offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      Status s = n < 0 ? ErrnoStatus("copy " + src, errno) : Internal("copy " + src + ": the file shrank");
      ::unlink(dest.c_str());
      return s;
    }
  }
  return Status::Ok();
}

Result<std::unique_ptr<CodeStore>> CodeStore::create(std::string root, std::string files, blob::BlobStore& blobs) {
  for (const auto* dir : {&root, &files}) {
    std::error_code ec;
    std::filesystem::remove_all(*dir, ec);
    RETURN_IF_ERROR(makeDirs(*dir));
  }
  return std::unique_ptr<CodeStore>(new CodeStore(std::move(root), std::move(files), blobs));
}

Result<std::string> CodeStore::makeInstanceDir(const std::string& instance) {
  std::string dir = root_ + "/" + instance;
  if (::mkdir(dir.c_str(), 0755) != 0) return ErrnoStatus("create " + dir, errno);
  return dir;
}

Result<std::string> CodeStore::appCopy(const std::string& app, const std::string& hash, bool executable) {
  std::string dir = files_ + "/" + app;
  std::string path = dir + "/" + hash + (executable ? ".x" : "");
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) return path;
  RETURN_IF_ERROR(makeDirs(dir));
  ASSIGN_OR_RETURN(std::string blob, blobs_.localPath(hash));
  // Made aside and renamed in, so a link never sees a partial copy.
  static std::atomic<uint64_t> counter{0};
  std::string tmp = dir + "/.tmp." + std::to_string(::getpid()) + "." + std::to_string(counter++);
  RETURN_IF_ERROR(copyFile(blob, tmp, executable ? 0555 : 0444));
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return ErrnoStatus("rename " + tmp, err);
  }
  return path;
}

Status CodeStore::linkInto(const std::string& app, const std::string& root_tree, const std::string& dir) {
  RETURN_IF_ERROR(validateAppName(app));
  std::vector<blob::FlatFile> files;
  RETURN_IF_ERROR(blob::walkTree(root_tree, blob::loaderFor(blobs_), [&](blob::FlatFile&& f) {
    files.push_back(std::move(f));
  }));
  // Those this node has no copy of, fetched together (a fleet's store goes
  // to the network for them; a local one has nothing to do).
  std::vector<std::string> fetch;
  for (const auto& f : files) {
    struct stat st {};
    std::string copy = files_ + "/" + app + "/" + f.hash + (f.kind == blob::EntryKind::kExecutable ? ".x" : "");
    if (!blobs_.isLocal(f.hash) && ::lstat(copy.c_str(), &st) != 0) fetch.push_back(f.hash);
  }
  if (!fetch.empty()) RETURN_IF_ERROR(blobs_.prefetch(fetch));
  for (const auto& f : files) {
    std::string dest = dir + "/" + f.path;
    RETURN_IF_ERROR(makeDirs(dirName(dest)));
    bool executable = f.kind == blob::EntryKind::kExecutable;
    ASSIGN_OR_RETURN(std::string src, appCopy(app, f.hash, executable));
    if (::link(src.c_str(), dest.c_str()) == 0) continue;
    int err = errno;
    // Past the link limit of the app's copy, or on another file system:
    // this file gets a copy of its own.
    if (err == EMLINK || err == EXDEV) {
      RETURN_IF_ERROR(copyFile(src, dest, executable ? 0555 : 0444).withContext("copy " + f.path));
    } else {
      return ErrnoStatus("link " + f.path, err);
    }
  }
  return Status::Ok();
}

void CodeStore::removeInstanceDir(const std::string& instance) {
  std::error_code ec;
  std::filesystem::remove_all(root_ + "/" + instance, ec);
}

void CodeStore::removeApp(const std::string& app) {
  if (!validateAppName(app).ok()) return;
  std::error_code ec;
  std::filesystem::remove_all(files_ + "/" + app, ec);
}

}  // namespace nubo::runtime
