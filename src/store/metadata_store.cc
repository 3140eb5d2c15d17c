#include "store/metadata_store.h"

namespace nubo::store {

std::string_view stateName(DeploymentState s) {
  switch (s) {
    case DeploymentState::kQueued: return "QUEUED";
    case DeploymentState::kBuilding: return "BUILDING";
    case DeploymentState::kStarting: return "STARTING";
    case DeploymentState::kReady: return "READY";
    case DeploymentState::kFailed: return "FAILED";
  }
  return "QUEUED";
}

std::optional<DeploymentState> stateFromName(std::string_view s) {
  if (s == "QUEUED") return DeploymentState::kQueued;
  if (s == "BUILDING") return DeploymentState::kBuilding;
  if (s == "STARTING") return DeploymentState::kStarting;
  if (s == "READY") return DeploymentState::kReady;
  if (s == "FAILED") return DeploymentState::kFailed;
  return std::nullopt;
}

}  // namespace nubo::store
