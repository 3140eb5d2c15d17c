#include "gateway/deployment_spec.h"

#include "manifest/manifest.h"

namespace nubo::gateway {

Result<runtime::DeploymentSpec> deploymentSpec(const store::Deployment& d, const SecretBox* secrets) {
  ASSIGN_OR_RETURN(manifest::Manifest m, manifest::parseManifestText(d.manifest_json));
  runtime::DeploymentSpec spec;
  spec.id = d.id;
  spec.app = d.app;
  spec.kind = d.runtimeKind();
  spec.root_tree = d.servedTree();
  spec.files = d.files;
  spec.entry = resolveEntry(spec.kind, m.entry);
  spec.env = m.env;
  auto redact = std::make_shared<std::vector<std::string>>();
  for (const auto& e : d.env) {
    if (!e.secret) {
      spec.env[e.name] = e.value;
      continue;
    }
    if (!secrets) return Internal("deployment " + d.id + " has secrets and this server has no secret key");
    ASSIGN_OR_RETURN(std::string value, secrets->unseal(e.value, d.app, e.name));
    // (Too short a value would hide half the log; 4 characters and more.)
    if (value.size() >= 4) redact->push_back(value);
    spec.env[e.name] = std::move(value);
  }
  if (!redact->empty()) spec.redact = std::move(redact);
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
