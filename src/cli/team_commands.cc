#include "cli/team_commands.h"

#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>

#include "cli/api_client.h"
#include "cli/cli_util.h"
#include "common/ids.h"

namespace nubo::cli {

Result<int64_t> parseDuration(std::string_view s) {
  if (s.size() < 2) return InvalidArgument("duration \"" + std::string(s) + "\" must be a number and a unit: 90m, 12h, 30d");
  int64_t unit = 0;
  switch (s.back()) {
    case 's': unit = 1; break;
    case 'm': unit = 60; break;
    case 'h': unit = 3600; break;
    case 'd': unit = 86400; break;
    case 'w': unit = 7 * 86400; break;
    default:
      return InvalidArgument("duration \"" + std::string(s) + "\" needs a unit: s, m, h, d or w (e.g. 30d)");
  }
  int64_t n = 0;
  for (char c : s.substr(0, s.size() - 1)) {
    if (c < '0' || c > '9' || n > 1'000'000'000) {
      return InvalidArgument("duration \"" + std::string(s) + "\" must be a whole number and a unit, e.g. 30d");
    }
    n = n * 10 + (c - '0');
  }
  if (n == 0) return InvalidArgument("duration \"" + std::string(s) + "\" must be more than zero");
  return n * unit;
}

Result<int64_t> parseTimeArg(std::string_view s, int64_t now_ms, std::string_view flag) {
  if (!s.empty() && s.back() != 'Z' && s.find('-') == std::string_view::npos) {
    auto d = parseDuration(s);
    if (!d.ok()) {
      return InvalidArgument(std::string(flag) + ": " + d.status().message() +
                             ", or a UTC time like 2026-12-06T10:00:00Z");
    }
    return now_ms - *d * 1000;
  }
  std::string t(s);
  if (!t.empty() && t.back() == 'Z') t.pop_back();
  struct tm tm {};
  const char* end = nullptr;
  for (const char* format : {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"}) {
    tm = {};
    end = ::strptime(t.c_str(), format, &tm);
    if (end && *end == '\0') break;
    end = nullptr;
  }
  if (!end) {
    return InvalidArgument(std::string(flag) + " \"" + std::string(s) +
                           "\" is neither a duration (90m, 1h, 2d) nor a UTC time like 2026-12-06T10:00:00Z");
  }
  return static_cast<int64_t>(::timegm(&tm)) * 1000;
}

void addTeamCommands(CLI::App& app, int* exit_code) {
  // whoami
  auto* whoami = app.add_subcommand("whoami", "Show the token in use: its name, role and apps");
  whoami->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json r, ApiClient(c).whoami());
      std::string apps;
      for (const auto& a : r["apps"]) apps += (apps.empty() ? "" : ",") + a.get<std::string>();
      std::printf("%s (%s) on %s apps\n", str(r, "name").c_str(), str(r, "role").c_str(),
                  apps.empty() ? "all" : apps.c_str());
      return Status::Ok();
    });
  });

  // tokens create / ls / revoke
  auto* tokens = app.add_subcommand("tokens", "Create, list or revoke API tokens (admin)");
  tokens->require_subcommand(1);
  struct CreateOpts {
    std::string name, role, expires;
    std::vector<std::string> apps;
    bool json = false;
  };
  auto co = std::make_shared<CreateOpts>();
  auto* create = tokens->add_subcommand("create", "Create a token; it is printed this once");
  create->add_option("name", co->name, "Token name (who its changes are recorded as)")->required();
  create->add_option("--role", co->role, "admin, deployer or viewer")
      ->required()
      ->check(CLI::IsMember({"admin", "deployer", "viewer"}));
  create->add_option("--app", co->apps, "Only this app (repeatable; default: every app)");
  create->add_option("--expires", co->expires, "Lifetime, e.g. 90m, 12h, 30d (default: never)");
  create->add_flag("--json", co->json, "Print JSON");
  create->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      Json req = {{"name", co->name}, {"role", co->role}, {"apps", co->apps}};
      for (const auto& a : co->apps) RETURN_IF_ERROR(validateAppName(a, "--app"));
      if (!co->expires.empty()) {
        ASSIGN_OR_RETURN(int64_t secs, parseDuration(co->expires));
        req["expires_s"] = secs;
      }
      ASSIGN_OR_RETURN(Json r, ApiClient(c).createToken(req));
      if (co->json) return printJson(r), Status::Ok();
      std::printf("%s\n", str(r, "token").c_str());
      std::fprintf(stderr, "Created token %s (%s%s%s); it is shown only this once\n", co->name.c_str(),
                   co->role.c_str(), r["expires_ms"].is_null() ? "" : ", expires ",
                   r["expires_ms"].is_null() ? "" : utcTime(r["expires_ms"].get<int64_t>()).c_str());
      return Status::Ok();
    });
  });
  auto ls_json = std::make_shared<bool>(false);
  auto* ls = tokens->add_subcommand("ls", "List tokens (never the tokens themselves)");
  ls->add_flag("--json", *ls_json, "Print JSON");
  ls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listTokens());
      if (*ls_json) return printJson(r["tokens"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"NAME", "ROLE", "APPS", "CREATED", "LAST USED", "EXPIRES"}};
      for (const auto& t : r["tokens"]) {
        std::string apps;
        for (const auto& a : t["apps"]) apps += (apps.empty() ? "" : ",") + a.get<std::string>();
        rows.push_back({str(t, "name"), str(t, "role"), apps.empty() ? "all" : apps,
                        age(t.value("created_ms", int64_t{0})),
                        t["last_used_ms"].is_null() ? "never" : age(t["last_used_ms"].get<int64_t>()),
                        t["expires_ms"].is_null() ? "never" : utcTime(t["expires_ms"].get<int64_t>())});
      }
      printTable(rows);
      return Status::Ok();
    });
  });
  auto revoke_name = std::make_shared<std::string>();
  auto* revoke = tokens->add_subcommand("revoke", "Revoke a token: refused from its next request on");
  revoke->add_option("name", *revoke_name, "Token name")->required();
  revoke->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json r, ApiClient(c).revokeToken(*revoke_name));
      std::printf("Revoked token %s\n", revoke_name->c_str());
      return Status::Ok();
    });
  });

  // domains add / ls / rm
  auto* domains = app.add_subcommand("domains", "Bind custom domains to apps");
  domains->require_subcommand(1);
  struct DomainOpts {
    std::string host, app, alias = "production";
    bool json = false;
  };
  auto dom = std::make_shared<DomainOpts>();
  auto* dadd = domains->add_subcommand("add", "Serve APP (its production alias, or --alias) at HOST (admin)");
  dadd->add_option("host", dom->host, "Host name, or *.example.com for every name one label below")->required();
  dadd->add_option("--app", dom->app, "App to serve")->required();
  dadd->add_option("--alias", dom->alias, "Alias to serve (default: production)");
  dadd->add_flag("--json", dom->json, "Print JSON");
  dadd->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(dom->app, "--app"));
      RETURN_IF_ERROR(validateAliasName(dom->alias, "--alias"));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).addDomain({{"host", dom->host}, {"app", dom->app}, {"alias", dom->alias}}));
      if (dom->json) return printJson(r), Status::Ok();
      std::printf("%s now serves %s of %s\n", str(r, "host").c_str(), str(r, "alias").c_str(), str(r, "app").c_str());
      return Status::Ok();
    });
  });
  auto* dls = domains->add_subcommand("ls", "List bound domains");
  dls->add_option("app", dom->app, "Only this app's");
  dls->add_flag("--json", dom->json, "Print JSON");
  dls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      if (!dom->app.empty()) RETURN_IF_ERROR(validateAppName(dom->app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listDomains(dom->app));
      if (dom->json) return printJson(r["domains"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"HOST", "APP", "ALIAS", "ADDED", "BY"}};
      for (const auto& d : r["domains"]) {
        rows.push_back({str(d, "host"), str(d, "app"), str(d, "alias"), age(d.value("created_ms", int64_t{0})),
                        str(d, "created_by")});
      }
      printTable(rows);
      return Status::Ok();
    });
  });
  auto* drm = domains->add_subcommand("rm", "Unbind HOST (admin)");
  drm->add_option("host", dom->host, "Host name as bound")->required();
  drm->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      ASSIGN_OR_RETURN(Json r, ApiClient(c).removeDomain(dom->host));
      std::printf("Removed domain %s\n", str(r, "removed").c_str());
      return Status::Ok();
    });
  });

  // env set / ls / rm
  auto* env = app.add_subcommand("env", "An app's env vars and encrypted secrets (each deployment keeps a snapshot)");
  env->require_subcommand(1);
  struct EnvOpts {
    std::string app, alias, name;
    std::vector<std::string> pairs;
    bool secret = false, redeploy = false, json = false;
  };
  auto eo = std::make_shared<EnvOpts>();
  auto* eset = env->add_subcommand("set", "Set KEY=VALUE pairs (KEY alone: its value is read from stdin)");
  eset->add_option("app", eo->app, "App name")->required();
  eset->add_option("pairs", eo->pairs, "KEY=VALUE, or KEY to read the value from stdin")->required();
  eset->add_flag("--secret", eo->secret, "Encrypt the values; they are never shown again, nor given to builds");
  eset->add_option("--alias", eo->alias, "Only for deployments to this alias (over the app's values)");
  eset->add_flag("--redeploy", eo->redeploy,
                 "Then redeploy the alias's deployment (production by default) with the new env, without a build");
  eset->add_flag("--json", eo->json, "Print JSON");
  eset->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(eo->app));
      if (!eo->alias.empty()) RETURN_IF_ERROR(validateAliasName(eo->alias, "--alias"));
      Json vars = Json::object();
      for (const auto& p : eo->pairs) {
        size_t eq = p.find('=');
        if (eq != std::string::npos) {
          vars[p.substr(0, eq)] = p.substr(eq + 1);
          continue;
        }
        std::string value((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
        while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
        vars[p] = value;
      }
      Json req = {{"vars", vars}, {"secret", eo->secret}, {"redeploy", eo->redeploy}, {"alias", eo->alias}};
      ASSIGN_OR_RETURN(Json r, ApiClient(c).setEnv(eo->app, req));
      if (eo->json) return printJson(r), Status::Ok();
      std::printf("Set %zu %s of %s%s\n", vars.size(), eo->secret ? "secrets" : "values", eo->app.c_str(),
                  eo->alias.empty() ? "" : (" for " + eo->alias).c_str());
      if (r.contains("redeployed_from")) {
        std::printf("Redeployed %s as %s (%s)\n", str(r, "redeployed_from").c_str(), str(r, "id").c_str(),
                    str(r, "state").c_str());
        if (str(r, "state") == "FAILED") return FailedPrecondition("the redeployment failed: " + str(r, "error"));
      }
      return Status::Ok();
    });
  });
  auto* els = env->add_subcommand("ls", "List env values (secrets: name, when and by whom only)");
  els->add_option("app", eo->app, "App name")->required();
  els->add_flag("--json", eo->json, "Print JSON");
  els->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(eo->app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listEnv(eo->app));
      if (eo->json) return printJson(r["env"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"NAME", "ALIAS", "VALUE", "UPDATED", "BY"}};
      for (const auto& e : r["env"]) {
        rows.push_back({str(e, "name"), e["alias"].is_null() ? "(all)" : str(e, "alias"),
                        e.value("secret", false) ? "(secret)" : str(e, "value"), age(e.value("updated_ms", int64_t{0})),
                        str(e, "updated_by")});
      }
      printTable(rows);
      return Status::Ok();
    });
  });
  auto* erm = env->add_subcommand("rm", "Remove an env value (deployments made before keep theirs)");
  erm->add_option("app", eo->app, "App name")->required();
  erm->add_option("name", eo->name, "Name")->required();
  erm->add_option("--alias", eo->alias, "The alias's own value (default: the app-wide one)");
  erm->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(eo->app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).removeEnv(eo->app, eo->name, eo->alias));
      std::printf("Removed %s of %s\n", eo->name.c_str(), eo->app.c_str());
      return Status::Ok();
    });
  });

  // cron ls APP
  auto* cron = app.add_subcommand("cron", "The production deployment's schedules");
  cron->require_subcommand(1);
  auto cron_app = std::make_shared<std::string>();
  auto cron_json = std::make_shared<bool>(false);
  auto* cls = cron->add_subcommand("ls", "Schedules (UTC) with their last run and next time");
  cls->add_option("app", *cron_app, "App name")->required();
  cls->add_flag("--json", *cron_json, "Print JSON");
  cls->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      RETURN_IF_ERROR(validateAppName(*cron_app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).listCron(*cron_app));
      if (*cron_json) return printJson(r["cron"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"SCHEDULE", "PATH", "LAST RUN", "LAST STATUS", "NEXT RUN"}};
      for (const auto& e : r["cron"]) {
        const Json& last = e["last_run"];
        std::string status = last.is_null() ? "-" : last.value("status", 0) ? std::to_string(last.value("status", 0))
                                                                            : "failed: " + str(last, "error");
        rows.push_back({str(e, "schedule"), str(e, "path"),
                        last.is_null() ? "never" : utcTime(last.value("at_ms", int64_t{0})), status,
                        e["next_ms"].is_null() ? "never" : utcTime(e["next_ms"].get<int64_t>())});
      }
      printTable(rows);
      return Status::Ok();
    });
  });

  // audit [APP]
  struct AuditOpts {
    std::string app;
    int limit = 50;
    bool json = false;
  };
  auto ao = std::make_shared<AuditOpts>();
  auto* audit = app.add_subcommand("audit", "Show who changed what, when and from where, newest first");
  audit->add_option("app", ao->app, "Only this app's changes");
  audit->add_option("-n,--limit", ao->limit, "How many (default 50, at most 1000)")->check(CLI::Range(1, 1000));
  audit->add_flag("--json", ao->json, "Print JSON");
  audit->callback([=] {
    *exit_code = withClient([&](HttpClient& c) -> Status {
      if (!ao->app.empty()) RETURN_IF_ERROR(validateAppName(ao->app));
      ASSIGN_OR_RETURN(Json r, ApiClient(c).audit(ao->app, static_cast<size_t>(ao->limit)));
      if (ao->json) return printJson(r["entries"]), Status::Ok();
      std::vector<std::vector<std::string>> rows{{"WHEN", "ACTOR", "ACTION", "APP", "TARGET", "DETAIL", "FROM"}};
      for (const auto& e : r["entries"]) {
        rows.push_back({utcTime(e.value("at_ms", int64_t{0})), str(e, "actor"), str(e, "action"), str(e, "app"),
                        str(e, "target"), e["detail"].empty() ? "-" : e["detail"].dump(), str(e, "source")});
      }
      printTable(rows);
      return Status::Ok();
    });
  });
}

}  // namespace nubo::cli
