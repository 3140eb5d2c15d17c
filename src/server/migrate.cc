#include "server/migrate.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "blob/local_blob_store.h"
#include "common/clock.h"
#include "common/fs.h"
#include "common/secret_box.h"
#include "server/data_dir.h"
#include "server/fleet_setup.h"
#include "store/sqlite/sqlite_metadata_store.h"

namespace nubo::server {
namespace {

constexpr size_t kBatch = 500;  // hashes asked of the fleet at once

// Streams the local blob `hash` into `to`, which checks the bytes against
// the name as it commits.
Status copyBlob(blob::LocalBlobStore& from, blob::BlobStore& to, const std::string& hash, uint64_t* bytes) {
  ASSIGN_OR_RETURN(blob::BlobFile file, from.open(hash));
  ASSIGN_OR_RETURN(auto w, to.writer());
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = ::read(file.fd.get(), buf.data(), buf.size());
    if (n < 0) return ErrnoStatus("read blob " + hash, errno);
    if (n == 0) break;
    RETURN_IF_ERROR(w->write(std::string_view(buf.data(), static_cast<size_t>(n))));
    *bytes += static_cast<uint64_t>(n);
  }
  auto committed = w->commit(hash);
  if (!committed.ok()) return Status(committed.status().code(), "blob " + hash + ": " + committed.status().message());
  return Status::Ok();
}

}  // namespace

Result<MigrateReport> migrate(const MigrateOptions& opts) {
  if (!opts.fleet.enabled() || opts.fleet.s3_endpoint.empty() || opts.fleet.s3_bucket.empty()) {
    return InvalidArgument("nubo migrate needs the fleet: --to-etcd URL[,URL], --to-s3 URL and --s3-bucket NAME");
  }
  struct stat st {};
  if (::stat((opts.data_dir + "/meta.db").c_str(), &st) != 0) {
    return NotFound("no single-node data in " + opts.data_dir + " (no meta.db): give the node's --from DIR");
  }
  // The node must not change its data while it is copied.
  auto lock = DataDirLock::acquire(opts.data_dir);
  if (!lock.ok()) return Status(lock.status().code(), lock.status().message() + "; stop that nubo serve first");
  SystemClock clock;
  ASSIGN_OR_RETURN(auto src, store::SqliteMetadataStore::open(opts.data_dir + "/meta.db", clock));
  ASSIGN_OR_RETURN(auto src_blobs, blob::LocalBlobStore::create(opts.data_dir + "/blobs"));
  ServerOptions target;
  target.fleet = opts.fleet;
  ASSIGN_OR_RETURN(Stores fleet, openStores(target, opts.data_dir + "/migrate", clock));
  // Sealed values stay sealed: the fleet must seal with this node's key.
  std::string key_path = opts.secret_key_file.empty() ? opts.data_dir + "/secret.key" : opts.secret_key_file;
  if (::stat(key_path.c_str(), &st) == 0) {
    ASSIGN_OR_RETURN(SecretBox box, SecretBox::open(key_path, ""));
    RETURN_IF_ERROR(checkSharedSecretKey(*fleet.meta, box, key_path));
  }
  MigrateReport rep;

  // ---- blobs ----------------------------------------------------------------
  std::vector<std::string> hashes;
  RETURN_IF_ERROR(src_blobs->list([&](const blob::BlobStore::Listed& l) {
    hashes.push_back(l.hash);
    return true;
  }));
  std::printf("migrate: %zu blobs on this node\n", hashes.size());
  for (size_t i = 0; i < hashes.size(); i += kBatch) {
    std::vector<std::string> batch(hashes.begin() + static_cast<long>(i),
                                   hashes.begin() + static_cast<long>(std::min(hashes.size(), i + kBatch)));
    ASSIGN_OR_RETURN(auto missing, fleet.blobs->missing(batch));
    rep.blobs_present += batch.size() - missing.size();
    for (const auto& h : missing) {
      RETURN_IF_ERROR(copyBlob(*src_blobs, *fleet.blobs, h, &rep.bytes_copied));
      ++rep.blobs_copied;
    }
    std::printf("migrate: blobs %zu of %zu (%llu copied)\n", std::min(hashes.size(), i + kBatch), hashes.size(),
                static_cast<unsigned long long>(rep.blobs_copied));
    std::fflush(stdout);
  }

  // ---- apps, deployments, aliases, env ------------------------------------------
  ASSIGN_OR_RETURN(auto apps, src->listApps());
  for (const auto& app : apps) {
    ASSIGN_OR_RETURN(auto deployments, src->listDeployments(app.name, 0));
    std::reverse(deployments.begin(), deployments.end());  // oldest first
    for (const auto& d : deployments) {
      Status s = fleet.meta->createDeployment(d, "", d.creator);
      if (s.code() == Code::kAlreadyExists) {
        ++rep.deployments_present;
        continue;
      }
      RETURN_IF_ERROR(s.withContext("deployment " + d.id));
      ++rep.deployments_copied;
    }
    ASSIGN_OR_RETURN(auto aliases, src->listAliases(app.name));
    for (const auto& a : aliases) {
      ASSIGN_OR_RETURN(auto history, src->aliasHistory(app.name, a.name, 0));
      ASSIGN_OR_RETURN(auto copied, fleet.meta->aliasHistory(app.name, a.name, 0));
      // Moves replayed in order, from where an earlier run stopped.
      for (size_t i = copied.size(); i < history.size(); ++i) {
        const store::AliasEvent& e = history[history.size() - 1 - i];
        if (e.kind == "rollback") {
          RETURN_IF_ERROR(fleet.meta->rollbackAlias(app.name, a.name, e.actor).status());
        } else {
          RETURN_IF_ERROR(fleet.meta->setAliasSplit(app.name, a.name, e.split, e.actor).status());
        }
        ++rep.alias_moves;
      }
    }
    ASSIGN_OR_RETURN(auto env, src->listEnv(app.name));
    for (size_t i = 0; i < env.size(); i += 100) {
      std::vector<store::EnvVar> part(env.begin() + static_cast<long>(i),
                                      env.begin() + static_cast<long>(std::min(env.size(), i + 100)));
      RETURN_IF_ERROR(fleet.meta->putEnv(part));
    }
    rep.env_values += env.size();
    std::printf("migrate: app %s (%zu deployments)\n", app.name.c_str(), deployments.size());
    std::fflush(stdout);
  }

  // ---- tokens, domains, audit ----------------------------------------------------
  ASSIGN_OR_RETURN(auto tokens, src->listTokens());
  for (auto t : tokens) {
    Status s = fleet.meta->putToken(t);
    if (s.code() == Code::kAlreadyExists && !fleet.meta->findTokenByHash(t.hash).ok()) {
      // Its name is taken by another token of the fleet (each installation
      // names its first token "admin"): kept under a name of its own.
      std::string taken = t.name;
      t.name += "-" + t.id.substr(0, std::min<size_t>(t.id.size(), 8));
      s = fleet.meta->putToken(t);
      if (s.ok()) std::printf("migrate: token %s is named %s in the fleet (its name was taken)\n", taken.c_str(), t.name.c_str());
    }
    if (s.ok()) ++rep.tokens;
    else if (s.code() != Code::kAlreadyExists) return s.withContext("token " + t.name);
  }
  ASSIGN_OR_RETURN(auto domains, src->listDomains(""));
  for (const auto& d : domains) {
    RETURN_IF_ERROR(fleet.meta->putDomain(d).withContext("domain " + d.host));
    ++rep.domains;
  }
  // The audit log, from after the last entry an earlier run copied.
  const std::string mark = "migrate/audit-copied";
  ASSIGN_OR_RETURN(auto copied, fleet.meta->getKey(mark));
  int64_t after = copied ? std::stoll(copied->value) : 0;
  uint64_t version = copied ? copied->version : 0;
  ASSIGN_OR_RETURN(auto audit, src->listAudit(store::AuditQuery{{}, 0, 0}));
  std::reverse(audit.begin(), audit.end());
  for (const auto& e : audit) {
    if (e.seq <= after) continue;
    RETURN_IF_ERROR(fleet.meta->appendAudit(e).status());
    ASSIGN_OR_RETURN(version, fleet.meta->compareAndSwap(mark, version, std::to_string(e.seq)));
    ++rep.audit_entries;
  }
  fleet = Stores{};
  std::error_code ec;
  std::filesystem::remove_all(opts.data_dir + "/migrate", ec);  // (the blob cache the copy used)
  return rep;
}

}  // namespace nubo::server
