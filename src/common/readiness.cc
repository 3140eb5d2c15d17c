#include "common/readiness.h"

namespace nubo {

void Readiness::require(std::string name) {
  std::lock_guard lock(mu_);
  conditions_.push_back({std::move(name), false, nullptr});
}

void Readiness::set(std::string_view name, bool met) {
  std::lock_guard lock(mu_);
  for (auto& c : conditions_) {
    if (c.name == name) c.met = met;
  }
}

void Readiness::check(std::string name, std::function<std::string()> check) {
  std::lock_guard lock(mu_);
  conditions_.push_back({std::move(name), false, std::move(check)});
}

Readiness::Report Readiness::report() const {
  std::vector<Condition> conditions;
  {
    std::lock_guard lock(mu_);
    conditions = conditions_;
  }
  Report r;
  for (const auto& c : conditions) {
    std::string missing = c.check ? c.check() : (c.met ? "" : "not yet");
    if (missing.empty()) {
      r.text += "ok " + c.name + "\n";
    } else {
      r.ready = false;
      r.text += "waiting " + c.name + ": " + missing + "\n";
    }
  }
  r.text += r.ready ? "ready\n" : "not ready\n";
  return r;
}

}  // namespace nubo
