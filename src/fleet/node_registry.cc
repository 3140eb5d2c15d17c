#include "fleet/node_registry.h"

#include <spdlog/spdlog.h>

#include "common/clock.h"

namespace nubo::fleet {

Json nodeJson(const NodeInfo& n) {
  return {{"id", n.id},           {"data_url", n.data_url},     {"control_url", n.control_url},
          {"version", n.version}, {"started_ms", n.started_ms}, {"heartbeat_ms", n.heartbeat_ms},
          {"instances", n.instances}, {"in_flight", n.in_flight}, {"load", n.load}, {"ready", n.ready}};
}

NodeInfo nodeFromJson(const Json& j) {
  NodeInfo n;
  n.id = j.value("id", "");
  n.data_url = j.value("data_url", "");
  n.control_url = j.value("control_url", "");
  n.version = j.value("version", "");
  n.started_ms = j.value("started_ms", int64_t{0});
  n.heartbeat_ms = j.value("heartbeat_ms", int64_t{0});
  n.instances = j.value("instances", uint64_t{0});
  n.in_flight = j.value("in_flight", uint64_t{0});
  n.load = j.value("load", 0.0);
  n.ready = j.value("ready", false);
  return n;
}

NodeRegistry::NodeRegistry(std::shared_ptr<store::etcd::EtcdClient> etcd, std::string prefix, NodeInfo self,
                           Figures figures, Options options)
    : etcd_(std::move(etcd)), root_(std::move(prefix) + "nodes/"), self_(std::move(self)),
      figures_(std::move(figures)), opts_(options) {}

Result<std::unique_ptr<NodeRegistry>> NodeRegistry::start(std::shared_ptr<store::etcd::EtcdClient> etcd,
                                                          std::string prefix, NodeInfo self, Figures figures,
                                                          Options options) {
  if (self.id.empty()) return InvalidArgument("a node needs an id");
  std::unique_ptr<NodeRegistry> r(
      new NodeRegistry(std::move(etcd), std::move(prefix), std::move(self), std::move(figures), options));
  // Another live node with this id is another process on the same data
  // directory's id (a copied directory): refused, or the two would share
  // one record.
  // (One that was killed leaves when its lease runs out: waited for.)
  ASSIGN_OR_RETURN(auto existing, r->etcd_->range(r->root_ + r->self_.id));
  for (auto until = std::chrono::steady_clock::now() + options.ttl + std::chrono::seconds(1);
       !existing.kvs.empty() && std::chrono::steady_clock::now() < until;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
    ASSIGN_OR_RETURN(existing, r->etcd_->range(r->root_ + r->self_.id));
  }
  if (!existing.kvs.empty()) {
    return FailedPrecondition("node id " + r->self_.id + " is registered by a running node already (" +
                              existing.kvs[0].value.substr(0, 200) + "); give this node its own --node-id (or wait " +
                              std::to_string(options.ttl.count()) + " s if that node just stopped)");
  }
  r->self_.started_ms = wallMillis();
  RETURN_IF_ERROR(r->beat());
  r->thread_ = std::thread([raw = r.get()] { raw->run(); });
  return r;
}

NodeRegistry::~NodeRegistry() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (lease_) (void)etcd_->leaseRevoke(lease_);  // leaves the list now, not in `ttl`
}

Status NodeRegistry::beat() {
  if (lease_ == 0) {
    ASSIGN_OR_RETURN(lease_, etcd_->leaseGrant(opts_.ttl.count()));
  }
  if (figures_) figures_(self_);
  self_.heartbeat_ms = wallMillis();
  // Keeps the lease alive and the figures fresh in one write; a lease that
  // ran out (etcd unreachable for longer than `ttl`) is replaced.
  Status put = etcd_->put(root_ + self_.id, dumpJson(nodeJson(self_)), lease_).status();
  if (!put.ok() && put.message().find("lease not found") != std::string::npos) {
    lease_ = 0;
    return beat();
  }
  RETURN_IF_ERROR(put);
  return etcd_->leaseKeepAlive(lease_);
}

void NodeRegistry::run() {
  std::string last_problem;
  std::unique_lock lock(mu_);
  while (!cv_.wait_for(lock, opts_.beat, [this] { return stop_; })) {
    lock.unlock();
    Status s = beat();
    if (s.code() == Code::kNotFound) {  // the lease ran out between the put and the keepalive
      lease_ = 0;
      s = beat();
    }
    if (!s.ok() && s.message() != last_problem) spdlog::warn("fleet: heartbeat of node {}: {}", self_.id, s.message());
    if (s.ok() && !last_problem.empty()) spdlog::info("fleet: node {} heartbeats again", self_.id);
    last_problem = s.ok() ? "" : s.message();
    lock.lock();
  }
}

Result<std::vector<NodeInfo>> NodeRegistry::list() {
  ASSIGN_OR_RETURN(auto r, etcd_->range(root_, store::etcd::EtcdClient::prefixEnd(root_)));
  std::vector<NodeInfo> out;
  for (const auto& kv : r.kvs) {
    auto j = parseJson(kv.value, "node record");
    if (j.ok() && j->is_object()) out.push_back(nodeFromJson(*j));
  }
  return out;
}

}  // namespace nubo::fleet
