#include "blob/blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <vector>

#include "blob/tree.h"
#include "common/sha256.h"

namespace nubo::blob {
namespace {

// Feeds the first `size` bytes of `fd` to `sink`; a file shorter than that
// (it shrank) is kFailedPrecondition. Bytes appended past `size` are not read.
Status readRange(int fd, uint64_t size, const std::string& path,
                 const std::function<Status(std::string_view)>& sink) {
  std::vector<char> buf(256 * 1024);
  uint64_t pos = 0;
  while (pos < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - pos));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus("read " + path, errno);
    if (n == 0) return FailedPrecondition(path + " changed while it was stored");
    RETURN_IF_ERROR(sink(std::string_view(buf.data(), static_cast<size_t>(n))));
    pos += static_cast<uint64_t>(n);
  }
  return Status::Ok();
}

}  // namespace

Result<std::string> putFile(BlobStore& blobs, const std::string& path, bool* stored) {
  if (stored) *stored = false;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd.valid()) return ErrnoStatus("open " + path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return ErrnoStatus("stat " + path, errno);
  if (!S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  Sha256 hasher;
  RETURN_IF_ERROR(readRange(fd.get(), size, path, [&](std::string_view b) {
    hasher.update(b);
    return Status::Ok();
  }));
  std::string hash = hasher.finishHex();
  if (blobs.has(hash)) return hash;  // an unchanged file costs one read
  ASSIGN_OR_RETURN(std::unique_ptr<BlobWriter> w, blobs.writer());
  RETURN_IF_ERROR(readRange(fd.get(), size, path, [&](std::string_view b) { return w->write(b); }));
  auto committed = w->commit(hash);
  if (!committed.ok() && committed.status().code() == Code::kInvalidArgument) {
    return FailedPrecondition(path + " changed while it was stored");
  }
  if (committed.ok() && stored) *stored = true;
  return committed;
}

Status checkBlobName(std::string_view hash) {
  if (!isSha256Hex(hash)) {
    return InvalidArgument("blob name \"" + std::string(hash.substr(0, 80)) +
                           "\" is not a SHA-256 hex digest (64 lowercase hex characters)");
  }
  return Status::Ok();
}

Status bringTrees(BlobStore& blobs, const std::string& root) {
  return walkTree(root, loaderFor(blobs), [](FlatFile&&) {});  // (loading a tree reads it through the store)
}

}  // namespace nubo::blob
