#include "blob/local_blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/sha256.h"

namespace nubo::blob {
namespace {

Status checkName(std::string_view hash) {
  if (!isSha256Hex(hash)) {
    return InvalidArgument("blob name \"" + std::string(hash.substr(0, 80)) +
                           "\" is not a SHA-256 hex digest (64 lowercase hex characters)");
  }
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<LocalBlobStore>> LocalBlobStore::create(std::string root) {
  RETURN_IF_ERROR(makeDirs(root));
  std::string tmp = joinPath(root, "tmp");
  RETURN_IF_ERROR(makeDirs(tmp));
  // Temp files belong to puts that never finished; no blob refers to them.
  if (DIR* d = ::opendir(tmp.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") ::unlink(joinPath(tmp, name).c_str());
    }
    ::closedir(d);
  }
  return std::unique_ptr<LocalBlobStore>(new LocalBlobStore(std::move(root)));
}

std::string LocalBlobStore::pathFor(std::string_view hash) const {
  std::string p = root_;
  p += '/';
  p.append(hash.substr(0, 2));
  p += '/';
  p.append(hash);
  return p;
}

Status LocalBlobStore::put(std::string_view hash, std::string_view bytes) {
  RETURN_IF_ERROR(checkName(hash));
  std::string actual = sha256Hex(bytes);
  if (actual != hash) {
    return InvalidArgument("blob bytes hash to " + actual + ", not to the name " + std::string(hash) +
                           " they were sent under; nothing was stored");
  }
  std::string final_path = pathFor(hash);
  struct stat st {};
  if (::stat(final_path.c_str(), &st) == 0) return Status::Ok();

  static std::atomic<uint64_t> counter{0};
  std::string tmp = root_ + "/tmp/" + std::string(hash.substr(0, 16)) + "." +
                    std::to_string(::getpid()) + "." + std::to_string(counter++);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd.valid()) return ErrnoStatus("create blob temp file", errno);
  Status s = writeAll(fd.get(), bytes);
  if (s.ok() && ::fsync(fd.get()) != 0) s = ErrnoStatus("fsync blob", errno);
  fd.reset();
  std::string shard = dirName(final_path);
  if (s.ok() && ::mkdir(shard.c_str(), 0755) != 0 && errno != EEXIST) s = ErrnoStatus("mkdir " + shard, errno);
  if (s.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) s = ErrnoStatus("rename blob", errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return syncDir(shard);
}

Result<std::string> LocalBlobStore::get(std::string_view hash) {
  RETURN_IF_ERROR(checkName(hash));
  auto r = readFile(pathFor(hash));
  if (!r.ok() && r.status().code() == Code::kNotFound) return NotFound("blob " + std::string(hash) + " not found");
  return r;
}

Result<BlobFile> LocalBlobStore::open(std::string_view hash) {
  RETURN_IF_ERROR(checkName(hash));
  std::string path = pathFor(hash);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return NotFound("blob " + std::string(hash) + " not found");
    return ErrnoStatus("open " + path, errno);
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  BlobFile f;
  f.fd = std::move(fd);
  f.size = static_cast<uint64_t>(st.st_size);
  return f;
}

Result<uint64_t> LocalBlobStore::size(std::string_view hash) {
  RETURN_IF_ERROR(checkName(hash));
  struct stat st {};
  if (::stat(pathFor(hash).c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("blob " + std::string(hash) + " not found");
    return ErrnoStatus("stat blob", errno);
  }
  return static_cast<uint64_t>(st.st_size);
}

Result<std::string> LocalBlobStore::localPath(std::string_view hash) {
  ASSIGN_OR_RETURN(uint64_t ignored, size(hash));
  (void)ignored;
  return pathFor(hash);
}

}  // namespace nubo::blob
