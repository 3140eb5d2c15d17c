// Small, careful file-system helpers shared by the stores and the CLI.
//
// writeFileAtomic() is the one way nubo replaces a file: write a temp file
// beside the target, fsync it, rename over the target, fsync the directory.
// A crash at any point leaves either the old or the new content, never a mix.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>
#include <string_view>

#include "common/status.h"

namespace nubo {

Result<std::string> readFile(const std::string& path, uint64_t max_bytes = UINT64_MAX);
Status writeFileAtomic(const std::string& path, std::string_view bytes, mode_t mode = 0644);

// Creates `path` and missing parents (like mkdir -p).
Status makeDirs(const std::string& path, mode_t mode = 0755);

// fsync of a directory, so that renames into it are durable.
Status syncDir(const std::string& dir);

// Writes all bytes to fd, retrying on EINTR and short writes.
Status writeAll(int fd, std::string_view bytes);

// "a/b/c" -> "a/b"; "c" -> ".".
// The names in a folder (without "." and ".."), sorted.
Result<std::vector<std::string>> listDir(const std::string& path);

std::string dirName(const std::string& path);
std::string joinPath(std::string_view a, std::string_view b);

// $HOME, or the passwd entry when unset.
std::string homeDir();

// Owns a file descriptor; closes it when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

}  // namespace nubo
