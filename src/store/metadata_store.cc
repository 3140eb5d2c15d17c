#include "store/metadata_store.h"

#include <algorithm>

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

Status validateSplit(const Split& split) {
  if (split.empty()) return InvalidArgument("a traffic split needs at least one deployment");
  if (split.size() > kMaxSplit) {
    return InvalidArgument("a traffic split has at most " + std::to_string(kMaxSplit) + " deployments, not " +
                           std::to_string(split.size()));
  }
  int sum = 0;
  for (size_t i = 0; i < split.size(); ++i) {
    const SplitPart& p = split[i];
    if (p.deployment_id.empty()) return InvalidArgument("a traffic split names a deployment with no id");
    if (p.weight < 1 || p.weight > 100) {
      return InvalidArgument("deployment " + p.deployment_id + " has weight " + std::to_string(p.weight) +
                             "; weights are whole numbers from 1 to 100");
    }
    for (size_t j = 0; j < i; ++j) {
      if (split[j].deployment_id == p.deployment_id) {
        return InvalidArgument("deployment " + p.deployment_id + " appears twice in the traffic split");
      }
    }
    sum += p.weight;
  }
  if (sum != 100) return InvalidArgument("the weights of a traffic split sum to " + std::to_string(sum) + ", not 100");
  return Status::Ok();
}

std::string splitText(const Split& split) {
  if (split.size() == 1 && split[0].weight == 100) return split[0].deployment_id;
  std::string out;
  for (const auto& p : split) out += (out.empty() ? "" : ",") + p.deployment_id + "=" + std::to_string(p.weight);
  return out;
}

Split sortedSplit(Split split) {
  std::stable_sort(split.begin(), split.end(), [](const SplitPart& a, const SplitPart& b) { return a.weight > b.weight; });
  return split;
}

Result<AliasEvent> newAliasMove(std::string_view app, std::string_view alias, const Split& split,
                                std::string_view kind, std::string_view actor, int64_t at_ms) {
  RETURN_IF_ERROR(validateSplit(split));
  AliasEvent e;
  e.app = std::string(app);
  e.alias = std::string(alias);
  e.split = sortedSplit(split);
  e.deployment_id = e.split[0].deployment_id;
  e.kind = std::string(kind);
  e.actor = std::string(actor);
  e.at_ms = at_ms;
  return e;
}

}  // namespace nubo::store
