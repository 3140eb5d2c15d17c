#include "cli/cli_util.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>

#include "common/client_config.h"
#include "common/clock.h"

namespace nubo::cli {

constexpr const char* kDefaultServer = "http://127.0.0.1:7070";

int fail(const Status& s) {
  std::fprintf(stderr, "error: %s\n", s.message().c_str());
  return exitCodeFor(s.code());
}

// Config file, then NUBO_SERVER / NUBO_TOKEN on top.
Result<ClientConfig> clientConfig() {
  ClientConfig c;
  auto loaded = loadClientConfig(clientConfigPath());
  if (loaded.ok()) c = *loaded;
  else if (loaded.status().code() != Code::kNotFound) return loaded.status();
  if (const char* s = std::getenv("NUBO_SERVER"); s && *s) c.server = s;
  if (const char* t = std::getenv("NUBO_TOKEN"); t && *t) c.token = t;
  if (c.server.empty()) c.server = kDefaultServer;
  if (c.token.empty()) {
    return Unauthenticated("no API token: run `nubo login --server URL --token TOKEN` or set NUBO_TOKEN "
                           "(the admin token is in DATA/admin.token of the server)");
  }
  return c;
}

int64_t nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string age(int64_t ms) {
  int64_t now = nowNs() / 1'000'000;
  int64_t s = std::max<int64_t>(0, (now - ms) / 1000);
  if (s < 60) return std::to_string(s) + "s ago";
  if (s < 3600) return std::to_string(s / 60) + "m ago";
  if (s < 86400) return std::to_string(s / 3600) + "h ago";
  return std::to_string(s / 86400) + "d ago";
}

// Left-aligned columns.
void printTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line.append(width[i] - r[i].size() + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
  }
}

std::string str(const Json& j, const char* key) {
  if (!j.contains(key) || j[key].is_null()) return "-";
  if (j[key].is_string()) return j[key].get<std::string>();
  return j[key].dump();
}

// Runs `fn` with a connected client, turning failures into exit codes.
int withClient(const std::function<Status(HttpClient&)>& fn) {
  auto cfg = clientConfig();
  if (!cfg.ok()) return fail(cfg.status());
  HttpClient client(cfg->server, cfg->token);
  Status s = fn(client);
  return s.ok() ? 0 : fail(s);
}

void printJson(const Json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string utcTime(int64_t ms) { return formatUtc(ms, false); }

}  // namespace nubo::cli
