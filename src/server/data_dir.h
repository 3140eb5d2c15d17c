// The server's data directory:
//   DATA/lock         flock()ed by the running `nubo serve` (holds its pid)
//   DATA/meta.db      SQLite metadata (WAL)
//   DATA/blobs/       content-addressed blobs
//   DATA/admin.token  the admin token, written once, mode 0600
//   DATA/serve.json   {"pid","data_url","control_url"} of the running server
#pragma once

#include <string>

#include "common/fs.h"
#include "common/status.h"

namespace nubo::server {

// $NUBO_DATA, else ~/.local/share/nubo.
std::string defaultDataDir();

// Holds DATA/lock for its lifetime. kFailedPrecondition naming the pid of
// the holder when another process has it.
class DataDirLock {
 public:
  static Result<DataDirLock> acquire(const std::string& data_dir);

 private:
  explicit DataDirLock(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

}  // namespace nubo::server
