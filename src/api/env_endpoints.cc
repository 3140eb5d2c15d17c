// The control API's endpoints for an app's env vars and secrets, and its cron schedules
// (docs/api.md): secret values are sealed as they arrive and never leave
// the server again, in any answer or in the audit log.
#include <algorithm>
#include <utility>  // before Asio: Boost 1.74's awaitable.hpp needs std::exchange

#include "api/control_api.h"
#include "api/endpoint_util.h"
#include "common/ids.h"

namespace nubo::api {
namespace {

constexpr size_t kMaxValueBytes = 32 << 10;
constexpr size_t kMaxVarsPerApp = 500;
// Every deployment keeps a copy of its env and the router holds each
// served one's: what an app's env may hold in all, as stored.
constexpr size_t kMaxEnvBytesPerApp = 128 << 10;

Status validateEnvName(std::string_view name) {
  if (name.empty() || name.size() > 256) return InvalidArgument("an env name has 1 to 256 characters");
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return InvalidArgument("env name \"" + std::string(name.substr(0, 64)) +
                             "\" may use only letters, digits and '_', not starting with a digit");
    }
  }
  if (name.substr(0, 5) == "NUBO_") {
    return InvalidArgument("env name " + std::string(name) + " is reserved: names starting with NUBO_ are the platform's");
  }
  return Status::Ok();
}

}  // namespace

// GET /v1/apps/{app}/env: names, scopes and who set them; a secret's value never.
Result<Response> ControlApi::listEnv(const Call& call) {
  ASSIGN_OR_RETURN(store::App a, store_.getApp(call.params[0]));
  ASSIGN_OR_RETURN(auto vars, store_.listEnv(a.name));
  Json list = Json::array();
  for (const auto& v : vars) {
    list.push_back({{"name", v.name},
                    {"alias", v.alias.empty() ? Json(nullptr) : Json(v.alias)},
                    {"secret", v.secret},
                    {"value", v.secret ? Json(nullptr) : Json(v.value)},
                    {"updated_ms", v.updated_ms},
                    {"updated_by", v.updated_by}});
  }
  return jsonResponse(200, {{"env", list}});
}

// PUT /v1/apps/{app}/env {"vars": {"K": "V"}, "secret": false, "alias": "", "redeploy": false}
boost::asio::awaitable<Response> ControlApi::setEnv(const Call& call) {
  const std::string& app = call.params[0];
  auto done = [&]() -> Result<Response> {
    ASSIGN_OR_RETURN(Json body, jsonBody(call.req));
    if (!body.contains("vars") || !body["vars"].is_object() || body["vars"].empty()) {
      return InvalidArgument("field \"vars\" must be an object of NAME: \"value\" pairs, at least one");
    }
    bool secret = false, redeploy = false;
    for (auto [key, out] : {std::pair{"secret", &secret}, std::pair{"redeploy", &redeploy}}) {
      if (!body.contains(key)) continue;
      if (!body[key].is_boolean()) return InvalidArgument(std::string("field \"") + key + "\" must be true or false");
      *out = body[key].get<bool>();
    }
    ASSIGN_OR_RETURN(std::string alias, stringField(body, "alias", ""));
    if (!alias.empty()) RETURN_IF_ERROR(validateAliasName(alias, "alias"));
    ASSIGN_OR_RETURN(auto existing, store_.listEnv(app));
    if (existing.size() + body["vars"].size() > kMaxVarsPerApp) {
      return ResourceExhausted("an app may have at most " + std::to_string(kMaxVarsPerApp) + " env values");
    }
    std::vector<store::EnvVar> vars;
    Json names = Json::array();
    for (const auto& [name, value] : body["vars"].items()) {
      RETURN_IF_ERROR(validateEnvName(name));
      if (!value.is_string()) return InvalidArgument("the value of " + name + " must be a string");
      const std::string& v = value.get_ref<const std::string&>();
      if (v.size() > kMaxValueBytes) {
        return InvalidArgument("the value of " + name + " has " + std::to_string(v.size()) +
                               " bytes; an env value may have at most 32 KiB");
      }
      store::EnvVar e;
      e.app = app;
      e.alias = alias;
      e.name = name;
      e.secret = secret;
      e.value = secret ? secrets_.seal(v, app, name) : v;
      e.updated_ms = clock_.nowMillis();
      e.updated_by = call.actor;
      vars.push_back(std::move(e));
      names.push_back(name);
    }
    size_t total = 0;
    for (const auto& v : existing) {
      bool replaced = std::any_of(vars.begin(), vars.end(),
                                  [&](const store::EnvVar& n) { return n.alias == v.alias && n.name == v.name; });
      if (!replaced) total += v.name.size() + v.value.size();
    }
    for (const auto& v : vars) total += v.name.size() + v.value.size();
    if (total > kMaxEnvBytesPerApp) {
      return ResourceExhausted("app " + app + "'s env would hold " + std::to_string(total >> 10) +
                               " KiB; an app's env may hold at most 128 KiB in all (secrets count encrypted, about "
                               "a third larger): keep large values in files or a store the function reads");
    }
    RETURN_IF_ERROR(store_.putEnv(vars));
    audit(call, "env.set", app, alias.empty() ? "*" : alias, {{"names", names}, {"secret", secret}});
    Json out = {{"set", names}, {"alias", alias.empty() ? Json(nullptr) : Json(alias)}, {"secret", secret}};
    if (!redeploy) return jsonResponse(200, out);
    // The alias's deployment again, built as it was, with the env as it is now.
    std::string target = alias.empty() ? "production" : alias;
    ASSIGN_OR_RETURN(auto aliases, store_.listAliases(app));
    std::string from_id;
    for (const auto& a : aliases) {
      if (a.name == target) from_id = a.deployment_id;
    }
    if (from_id.empty()) {
      return FailedPrecondition("the env is set, but app " + app + " has no " + target +
                                " deployment to redeploy with it; deploy one");
    }
    ASSIGN_OR_RETURN(store::Deployment from, store_.getDeployment(from_id));
    CreateRequest cr;
    cr.app = app;
    cr.actor = call.actor;
    cr.alias = target;
    cr.same_build_as = from;
    ASSIGN_OR_RETURN(store::Deployment d, deployer_.createDeployment(cr));
    audit(call, "redeploy", app, d.id, {{"from", from.id}, {"alias", target}, {"env_only", true}});
    // (The new deployment, as a redeploy answers, with what was set.)
    Json j = deploymentJson(d);
    j["env_set"] = names;
    j["redeployed_from"] = from.id;
    return jsonResponse(201, j);
  }();
  if (!done.ok()) co_return Response::error(done.status());
  if (done->status != 201) co_return std::move(done).value();
  co_return co_await answerWhenStarted(std::move(done).value());
}

// DELETE /v1/apps/{app}/env/{name}[?alias=ALIAS]
Result<Response> ControlApi::removeEnv(const Call& call) {
  const std::string& app = call.params[0];
  const std::string& name = call.params[1];
  RETURN_IF_ERROR(validateEnvName(name));
  std::string alias = queryParam(call.req.query, "alias");
  if (!alias.empty()) RETURN_IF_ERROR(validateAliasName(alias, "alias"));
  RETURN_IF_ERROR(store_.deleteEnv(app, alias, name));
  audit(call, "env.remove", app, alias.empty() ? "*" : alias, {{"names", Json::array({name})}});
  return jsonResponse(200, {{"removed", name}, {"alias", alias.empty() ? Json(nullptr) : Json(alias)}});
}

// GET /v1/apps/{app}/cron: the production deployment's schedules, their
// last run and next time.
Result<Response> ControlApi::listCron(const Call& call) {
  ASSIGN_OR_RETURN(store::App a, store_.getApp(call.params[0]));
  Json list = Json::array();
  if (cron_) {
    ASSIGN_OR_RETURN(auto entries, cron_->describe(a.name));
    for (const auto& e : entries) {
      Json last = nullptr;
      if (e.last_run_ms) {
        last = {{"slot_ms", e.last_slot_ms}, {"at_ms", e.last_run_ms},         {"status", e.last_status},
                {"duration_ms", e.last_duration_ms}, {"request_id", e.last_request_id},
                {"error", e.last_error.empty() ? Json(nullptr) : Json(e.last_error)}};
      }
      list.push_back({{"schedule", e.schedule},
                      {"path", e.path},
                      {"deployment", e.deployment},
                      {"next_ms", e.next_ms ? Json(*e.next_ms) : Json(nullptr)},
                      {"last_run", last}});
    }
  }
  return jsonResponse(200, {{"cron", list}});
}

}  // namespace nubo::api
