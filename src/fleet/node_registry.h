// NodeRegistry: the nodes of a fleet, each under PREFIX/nodes/<id> in etcd,
// bound to an etcd lease: a node rewrites its record every `beat` with
// fresh figures, and a node that stops (crash, kill -9, partition) leaves
// the list when its lease runs out (`ttl`), without anyone removing it.
//
// One thread per registry heartbeats; list() may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/json.h"
#include "common/status.h"
#include "store/etcd/etcd_client.h"

namespace nubo::fleet {

struct NodeInfo {
  std::string id;
  std::string data_url, control_url;  // where other nodes and clients reach it
  std::string version;
  int64_t started_ms = 0;
  int64_t heartbeat_ms = 0;
  uint64_t instances = 0;  // running function instances
  uint64_t in_flight = 0;  // requests being answered
  double load = 0;         // 1-minute load average
  bool ready = false;      // what its /_nubo/readyz says
};

Json nodeJson(const NodeInfo& n);
NodeInfo nodeFromJson(const Json& j);

class NodeRegistry {
 public:
  // Fills the figures of this node's record before each beat.
  using Figures = std::function<void(NodeInfo&)>;
  struct Options {
    std::chrono::milliseconds beat{1000};
    std::chrono::seconds ttl{5};
  };
  // Registers `self` (a lease, then the record) and starts heartbeating.
  static Result<std::unique_ptr<NodeRegistry>> start(std::shared_ptr<store::etcd::EtcdClient> etcd,
                                                     std::string prefix, NodeInfo self, Figures figures,
                                                     Options options);
  ~NodeRegistry();  // stops heartbeating and removes the record (lease revoked)

  // Every node with a live lease, by id.
  Result<std::vector<NodeInfo>> list();
  const std::string& id() const { return self_.id; }

 private:
  NodeRegistry(std::shared_ptr<store::etcd::EtcdClient> etcd, std::string prefix, NodeInfo self, Figures figures,
               Options options);
  Status beat();  // (the heartbeat thread)
  void run();

  const std::shared_ptr<store::etcd::EtcdClient> etcd_;
  const std::string root_;  // PREFIX/nodes/
  NodeInfo self_;           // only the heartbeat thread writes it after start()
  const Figures figures_;
  const Options opts_;
  int64_t lease_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace nubo::fleet
