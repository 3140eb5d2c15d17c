#include "blob/local_blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "common/sha256.h"

namespace nubo::blob {

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

std::string LocalBlobStore::tempPath(std::string_view tag) const {
  static std::atomic<uint64_t> counter{0};
  return root_ + "/tmp/" + std::string(tag.substr(0, 16)) + "." + std::to_string(::getpid()) + "." +
         std::to_string(counter++);
}

Status LocalBlobStore::install(const std::string& tmp, int fd, std::string_view hash) {
  Status s;
  if (::fsync(fd) != 0) s = ErrnoStatus("fsync blob", errno);
  std::string final_path = pathFor(hash);
  std::string shard = dirName(final_path);
  if (s.ok() && ::mkdir(shard.c_str(), 0755) != 0 && errno != EEXIST) s = ErrnoStatus("mkdir " + shard, errno);
  if (s.ok() && ::rename(tmp.c_str(), final_path.c_str()) != 0) s = ErrnoStatus("rename blob", errno);
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return syncDir(shard);
}

Status LocalBlobStore::put(std::string_view hash, std::string_view bytes) {
  RETURN_IF_ERROR(checkBlobName(hash));
  std::string actual = sha256Hex(bytes);
  if (actual != hash) {
    return InvalidArgument("blob bytes hash to " + actual + ", not to the name " + std::string(hash) +
                           " they were sent under; nothing was stored");
  }
  struct stat st {};
  if (::stat(pathFor(hash).c_str(), &st) == 0) return Status::Ok();

  std::string tmp = tempPath(hash);
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd.valid()) return ErrnoStatus("create blob temp file", errno);
  if (Status s = writeAll(fd.get(), bytes); !s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return install(tmp, fd.get(), hash);
}

// Writes to a temp file in ROOT/tmp, hashing as it goes; commit() renames it
// into place.
class LocalBlobStore::Writer final : public BlobWriter {
 public:
  Writer(LocalBlobStore& store, std::string tmp, UniqueFd fd, BeforeVisible before_visible)
      : store_(store), tmp_(std::move(tmp)), fd_(std::move(fd)), before_visible_(std::move(before_visible)) {}
  ~Writer() override {
    if (fd_.valid()) ::unlink(tmp_.c_str());
  }

  Status write(std::string_view bytes) override {
    if (!fd_.valid()) return FailedPrecondition("blob writer used after commit");
    RETURN_IF_ERROR(writeAll(fd_.get(), bytes));
    hasher_.update(bytes);
    size_ += bytes.size();
    return Status::Ok();
  }

  Result<std::string> commit(std::string_view expected) override {
    if (!fd_.valid()) return FailedPrecondition("blob writer committed twice");
    std::string hash = hasher_.finishHex();
    UniqueFd fd = std::move(fd_);
    if (!expected.empty() && hash != expected) {
      ::unlink(tmp_.c_str());
      return InvalidArgument("blob bytes hash to " + hash + ", not to the name " + std::string(expected) +
                             " they were sent under; nothing was stored");
    }
    struct stat st {};
    if (::stat(store_.pathFor(hash).c_str(), &st) == 0) {
      ::unlink(tmp_.c_str());  // stored already
      return hash;
    }
    if (before_visible_) {
      if (Status s = before_visible_(hash, tmp_, size_); !s.ok()) {
        ::unlink(tmp_.c_str());
        return s;
      }
    }
    RETURN_IF_ERROR(store_.install(tmp_, fd.get(), hash));
    return hash;
  }

 private:
  LocalBlobStore& store_;
  std::string tmp_;
  UniqueFd fd_;
  Sha256 hasher_;
  BeforeVisible before_visible_;
};

Result<std::unique_ptr<BlobWriter>> LocalBlobStore::writer() { return writer(nullptr); }

Result<std::unique_ptr<BlobWriter>> LocalBlobStore::writer(BeforeVisible before_visible) {
  std::string tmp = tempPath("upload");
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd.valid()) return ErrnoStatus("create blob temp file", errno);
  return std::unique_ptr<BlobWriter>(new Writer(*this, std::move(tmp), std::move(fd), std::move(before_visible)));
}

Result<std::string> LocalBlobStore::get(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  auto r = readFile(pathFor(hash));
  if (!r.ok() && r.status().code() == Code::kNotFound) return NotFound("blob " + std::string(hash) + " not found");
  return r;
}

Result<BlobFile> LocalBlobStore::open(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
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
  RETURN_IF_ERROR(checkBlobName(hash));
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

Status LocalBlobStore::list(const std::function<bool(const Listed&)>& each) {
  ASSIGN_OR_RETURN(std::vector<std::string> shards, listDir(root_));
  for (const auto& shard : shards) {
    if (shard.size() != 2) continue;  // tmp/ and anything else that is not a shard
    std::string dir = root_ + "/" + shard;
    auto names = listDir(dir);
    if (!names.ok()) continue;
    for (const auto& name : *names) {
      if (!isSha256Hex(name) || name.compare(0, 2, shard) != 0) continue;
      struct stat st {};
      if (::stat((dir + "/" + name).c_str(), &st) != 0) continue;  // removed meanwhile
      Listed l;
      l.hash = name;
      l.size = static_cast<uint64_t>(st.st_size);
      l.touched_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
      if (!each(l)) return Status::Ok();
    }
  }
  return Status::Ok();
}

Status LocalBlobStore::touch(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  if (::utimensat(AT_FDCWD, pathFor(hash).c_str(), nullptr, 0) != 0) {
    if (errno == ENOENT) return NotFound("blob " + std::string(hash) + " not found");
    return ErrnoStatus("touch blob", errno);
  }
  return Status::Ok();
}

Result<std::vector<std::string>> LocalBlobStore::missing(const std::vector<std::string>& hashes) {
  for (const auto& h : hashes) RETURN_IF_ERROR(checkBlobName(h));
  std::vector<std::string> out;
  for (const auto& h : hashes) {
    Status s = touch(h);
    if (s.code() == Code::kNotFound) {
      out.push_back(h);
    } else if (!s.ok()) {
      return s;
    }
  }
  return out;
}

Status LocalBlobStore::remove(std::string_view hash) {
  RETURN_IF_ERROR(checkBlobName(hash));
  if (::unlink(pathFor(hash).c_str()) != 0 && errno != ENOENT) return ErrnoStatus("remove blob", errno);
  return Status::Ok();
}

}  // namespace nubo::blob
