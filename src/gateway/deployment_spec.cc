#include "gateway/deployment_spec.h"

#include "manifest/manifest.h"

namespace nubo::gateway {

Result<runtime::DeploymentSpec> deploymentSpec(const store::Deployment& d) {
  ASSIGN_OR_RETURN(manifest::Manifest m, manifest::parseManifestText(d.manifest_json));
  runtime::DeploymentSpec spec;
  spec.id = d.id;
  spec.app = d.app;
  spec.kind = d.runtimeKind();
  spec.root_tree = d.servedTree();
  spec.files = d.files;
  spec.entry = resolveEntry(spec.kind, m.entry);
  spec.env = m.env;
  spec.limits.concurrency = m.limits.concurrency;
  spec.limits.max_instances = m.limits.max_instances;
  spec.limits.min_instances = m.limits.min_instances;
  spec.limits.timeout = std::chrono::milliseconds(m.limits.timeout_ms);
  spec.limits.idle_ttl = std::chrono::seconds(m.limits.idle_ttl_s);
  spec.network = m.permissions.network;
  spec.tmp_mb = m.permissions.tmp_mb;
  spec.memory_mb = m.limits.memory_mb;
  spec.cpu = m.limits.cpu;
  spec.health_path = m.health.path;
  return spec;
}

}  // namespace nubo::gateway
