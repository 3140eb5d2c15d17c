// How a deployment that runs code runs, from its record and manifest: the
// one translation of manifest fields into a runtime::DeploymentSpec. The
// router makes it when its table loads (off the data plane), so a request
// never parses a manifest or reads the store; the start check makes it for
// its probe.
#pragma once

#include "common/status.h"
#include "runtime/pool.h"
#include "store/metadata_store.h"

namespace nubo::gateway {

// kInvalidArgument when the stored manifest no longer parses.
Result<runtime::DeploymentSpec> deploymentSpec(const store::Deployment& d);

}  // namespace nubo::gateway
