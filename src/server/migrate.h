// `nubo migrate`: copies a single node's data directory (SQLite metadata,
// local blobs) into a fleet's etcd and S3 bucket, so an installation grows
// into a fleet without redeploying.
//
// - Blobs first (a deployment is copied only once everything it needs is
//   stored): those the fleet lacks (asked in batches), streamed and
//   verified against their hash as they are written.
// - Then apps and deployments (oldest first, same ids, states and env
//   snapshots), each alias's moves replayed in order (so rollback walks the
//   same history), tokens (their hashes: the same tokens work), domains,
//   env values (secrets stay sealed: the fleet must use this node's secret
//   key, checked), and the audit log.
// - Idempotent and resumable: what the fleet has already is skipped, so a
//   run cut short is run again.
// The node must be stopped (its data directory's lock is taken).
#pragma once

#include <string>

#include "common/status.h"
#include "server/server.h"

namespace nubo::server {

struct MigrateOptions {
  std::string data_dir;       // the single node's
  std::string secret_key_file;  // "" : DATA/secret.key
  FleetOptions fleet;         // where to (etcd, S3)
};

struct MigrateReport {
  uint64_t blobs_copied = 0, blobs_present = 0, bytes_copied = 0;
  uint64_t deployments_copied = 0, deployments_present = 0;
  uint64_t alias_moves = 0, tokens = 0, domains = 0, env_values = 0, audit_entries = 0;
};

// Prints progress lines to stdout.
Result<MigrateReport> migrate(const MigrateOptions& opts);

}  // namespace nubo::server
