// How a deployment that runs code runs, from its record and manifest: the
// one translation of manifest fields into a runtime::DeploymentSpec. The
// router makes it when its table loads (off the data plane), so a request
// never parses a manifest or reads the store; the start check makes it for
// its probe.
#pragma once

#include "common/secret_box.h"
#include "common/status.h"
#include "runtime/pool.h"
#include "store/metadata_store.h"

namespace nubo::gateway {

// Its env: the manifest's, then the deployment's snapshot of the app's env
// over it, secrets opened with `secrets` (and listed in `redact`).
// kInvalidArgument when the stored manifest no longer parses; kInternal
// naming the secret when one does not open (changed, or another key), or
// when there are secrets and no box.
Result<runtime::DeploymentSpec> deploymentSpec(const store::Deployment& d, const SecretBox* secrets);

}  // namespace nubo::gateway
