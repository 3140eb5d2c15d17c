// What a client without a token, or with one and hostile bodies, can do to
// the control API of a real `nubo serve`.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>

#include "common/sha256.h"
#include "api/control_api.h"
#include "integration_util.h"

namespace nubo::testing_util {
namespace {

uint64_t statusField(pid_t pid, const std::string& field) {
  std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  auto at = status.find(field + ":");
  if (at == std::string::npos) return 0;
  return std::stoull(status.substr(at + field.size() + 1)) * 1024;
}

int portOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// Reads what the server sends within `ms`, until it closes.
std::string readFor(int fd, int ms) {
  std::string got;
  char buf[4096];
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

class EscapeApiTest : public SharedServerTest {};

// Every endpoint of the control API, without a token and with a wrong one,
// answers 401 and does nothing; with the admin token none answers 401.
TEST_F(EscapeApiTest, EveryEndpointNeedsTheToken) {
  deployApp("guarded", {{"index.html", "still here"}});
  std::string h = sha256Hex("x"), d = "d0000000000000";
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/v1/apps"},
      {"GET", "/v1/apps/guarded"},
      {"DELETE", "/v1/apps/guarded"},
      {"POST", "/v1/apps/guarded/deployments"},
      {"GET", "/v1/apps/guarded/deployments"},
      {"GET", "/v1/apps/guarded/aliases"},
      {"PUT", "/v1/apps/guarded/aliases/staging"},
      {"DELETE", "/v1/apps/guarded/aliases/production"},
      {"GET", "/v1/apps/guarded/aliases/production/history"},
      {"POST", "/v1/apps/guarded/promote"},
      {"POST", "/v1/apps/guarded/rollback"},
      {"GET", "/v1/apps/guarded/logs"},
      {"POST", "/v1/negotiate"},
      {"PUT", "/v1/blobs/" + h},
      {"GET", "/v1/blobs/" + h},
      {"PUT", "/v1/trees/" + h},
      {"POST", "/v1/gc"},
      {"GET", "/v1/instances"},
      {"GET", "/v1/deployments/" + d},
      {"GET", "/v1/deployments/" + d + "/build-log"},
      {"GET", "/v1/deployments/" + d + "/events"},
      {"POST", "/v1/deployments/" + d + "/redeploy"},
      {"GET", "/v1/no-such-endpoint"},
  };
  for (const auto& [method, path] : routes) {
    for (const std::string& token : {std::string(), std::string("not-the-token")}) {
      cli::HttpClient c(server_->controlUrl(), token);
      auto r = c.send(method, path, method == "GET" || method == "DELETE" ? "" : "{}");
      ASSERT_TRUE(r.ok()) << method << " " << path;
      EXPECT_EQ(r->status, 401) << method << " " << path << (token.empty() ? " without a token" : " with a bad one")
                                << ": " << r->body;
    }
    if (method == "DELETE") continue;  // (what the admin token may do is not this test's)
    auto good = server_->control(method, path, method == "GET" ? "" : "{}");
    EXPECT_NE(good.status, 401) << method << " " << path << ": " << good.body;
  }
  EXPECT_EQ(server_->get("/guarded/").body, "still here") << "nothing was removed without the token";
  EXPECT_EQ(server_->control("GET", "/healthz", "", "nobody").status, 200) << "the health check needs none";
}

// The path of endpoint `e` with its "{}" filled in: `app`, a deployment
// id, an alias, a blob name or a token name.
std::string filledPath(const api::ControlApi::Endpoint& e, const std::string& app, const std::string& deployment) {
  std::string path(e.path);
  for (size_t at = path.find("{}"); at != std::string::npos; at = path.find("{}")) {
    std::string value = path.substr(0, at) == "/v1/apps/" ? app
                        : path.find("/blobs/") != std::string::npos || path.find("/trees/") != std::string::npos
                            ? sha256Hex("x")
                        : path.find("/deployments/") != std::string::npos ? deployment
                        : path.find("/tokens/") != std::string::npos      ? "no-such-token"
                                                                          : "production";
    path.replace(at, 2, value);
  }
  return path;
}

bool bodyless(const api::ControlApi::Endpoint& e) {
  return e.method == "GET" || e.method == "DELETE" || e.method == "HEAD";
}

// The route table is the one place access is declared: only the health
// checks, the metrics (which check their own token when one is set), the
// console's files and its sign-in (which checks the token it is given) are
// public, and every other endpoint in it (added later too) refuses a
// request without the token or with a wrong one, before it does anything.
TEST_F(EscapeApiTest, EveryEndpointInTheRouteTableDeclaresItsAccess) {
  deployApp("tabled", {{"index.html", "kept"}});
  size_t checked = 0;
  for (const auto& e : api::ControlApi::endpoints()) {
    if (e.access == api::ControlApi::Endpoint::Access::kPublic) {
      std::string what = std::string(e.method) + " " + std::string(e.path);
      EXPECT_TRUE(what == "GET /healthz" || what == "GET /_nubo/healthz" || what == "GET /_nubo/readyz" ||
                  what == "GET /metrics" || what == "POST /v1/session" || what == "DELETE /v1/session" ||
                  what == "GET /" || what == "GET /console/{}")
          << what << " is public";
      continue;
    }
    std::string path = filledPath(e, "tabled", "d0000000000000");
    for (const std::string& token : {std::string(), std::string("not-the-token")}) {
      cli::HttpClient c(server_->controlUrl(), token);
      auto r = c.send(std::string(e.method), path, bodyless(e) ? "" : "{}");
      ASSERT_TRUE(r.ok()) << e.method << " " << path;
      EXPECT_EQ(r->status, 401) << e.method << " " << path << ": " << r->body;
    }
    ++checked;
  }
  EXPECT_GE(checked, 20u);
  EXPECT_EQ(server_->get("/tabled/").body, "kept");
  // The public path with another method says so (405), needing no token.
  auto post = server_->control("POST", "/healthz", "{}", "nobody");
  EXPECT_EQ(post.status, 405) << post.body;
}

// Every endpoint against every role, as the table declares it: a viewer is
// refused (403, naming its role) whatever changes anything; a deployer is
// refused the admin's endpoints; a token scoped to one app is refused the
// endpoints of another (403 naming the app, or 404 for a deployment of
// it), all before the endpoint runs. Nothing refused changes anything.
TEST_F(EscapeApiTest, EveryEndpointChecksTheRoleAndTheAppOfTheToken) {
  Json other = deployApp("roles-other", {{"index.html", "untouched"}});
  std::string other_deployment = other["deployment"];
  auto token = [&](const std::string& name, const std::string& role, const std::string& app) {
    Json req = {{"name", name}, {"role", role}};
    if (!app.empty()) req["apps"] = Json::array({app});
    auto r = server_->control("POST", "/v1/tokens", dumpJson(req));
    EXPECT_EQ(r.status, 201) << r.body;
    return parseJson(r.body, "token").value()["token"].get<std::string>();
  };
  std::string viewer = token("walk-viewer", "viewer", "");
  std::string deployer = token("walk-deployer", "deployer", "");
  std::string scoped = token("walk-scoped", "deployer", "roles-mine");
  using A = api::ControlApi::Endpoint::Access;
  using S = api::ControlApi::Endpoint::Scope;
  size_t refused = 0;
  for (const auto& e : api::ControlApi::endpoints()) {
    if (e.access == A::kPublic) continue;
    std::string what = std::string(e.method) + " " + std::string(e.path);
    std::string path = filledPath(e, "roles-other", other_deployment);
    auto send = [&](const std::string& t) {
      cli::HttpClient c(server_->controlUrl(), t);
      auto r = c.send(std::string(e.method), path, bodyless(e) ? "" : "{}");
      EXPECT_TRUE(r.ok()) << what;
      return r.ok() ? *r : cli::HttpResponse{};
    };
    if (e.access != A::kView) {
      auto r = send(viewer);
      EXPECT_EQ(r.status, 403) << what << ": " << r.body;
      if (e.method != "HEAD") {
        EXPECT_NE(r.body.find("viewer"), std::string::npos) << what << ": " << r.body;
      }
      ++refused;
    } else if (path.ends_with("/logs/events")) {
      // (A stream that goes on: its first bytes say it was not refused.)
      cli::HttpClient c(server_->controlUrl(), viewer);
      EXPECT_TRUE(c.stream(path, [](std::string_view) { return false; }).ok()) << what << " is a read a viewer may make";
    } else {
      EXPECT_NE(send(viewer).status, 403) << what << " is a read a viewer may make";
    }
    if (e.access == A::kAdmin) {
      auto r = send(deployer);
      EXPECT_EQ(r.status, 403) << what << ": " << r.body;
      if (e.method != "HEAD") {
        EXPECT_NE(r.body.find("admin"), std::string::npos) << what << ": " << r.body;
      }
    }
    if (e.scope == S::kApp && e.access != A::kAdmin) {
      auto r = send(scoped);
      EXPECT_EQ(r.status, 403) << what << ": " << r.body;
      EXPECT_NE(r.body.find("roles-other"), std::string::npos) << what << ": " << r.body;
    }
    if (e.scope == S::kDeployment) {
      EXPECT_EQ(send(scoped).status, 404) << what << ": another app's deployment is not there for a scoped token";
    }
  }
  EXPECT_GE(refused, 12u);
  EXPECT_EQ(server_->get("/roles-other/").body, "untouched");
  auto aliases = server_->control("GET", "/v1/apps/roles-other/aliases");
  EXPECT_NE(aliases.body.find(other_deployment), std::string::npos) << aliases.body;
}

// An upload without a valid token is refused from its head: none of its
// body is read or held.
TEST_F(EscapeApiTest, AnUnauthenticatedUploadIsRefusedBeforeItsBodyIsRead) {
  uint64_t before = statusField(server_->pid(), "VmHWM");
  std::vector<int> fds;
  for (int i = 0; i < 3; ++i) {
    int fd = connectLoopback(portOf(server_->controlUrl()));
    ASSERT_GE(fd, 0);
    std::string head = "PUT /v1/blobs/" + std::string(64, 'a') +
                       " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong\r\nContent-Length: 300000000\r\n\r\n";
    ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
    // Some of the body, as an attacker would keep sending.
    std::string chunk(1 << 20, 'x');
    for (int k = 0; k < 4; ++k) (void)::send(fd, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    fds.push_back(fd);
  }
  for (int fd : fds) {
    std::string got = readFor(fd, 3000);
    EXPECT_EQ(got.rfind("HTTP/1.1 401", 0), 0u) << got.substr(0, 200);
    ::close(fd);
  }
  EXPECT_LT(statusField(server_->pid(), "VmHWM"), before + (64u << 20));
  // The same without any token at all, on a JSON endpoint.
  int fd = connectLoopback(portOf(server_->controlUrl()));
  std::string head = "POST /v1/negotiate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  EXPECT_EQ(readFor(fd, 3000).rfind("HTTP/1.1 401", 0), 0u);
  ::close(fd);
}

// JSON endpoints take a few MB; only file blobs take the upload limit.
// (Raw socket: a client library still sending its body may report the
// server's early answer as a broken connection instead.)
TEST_F(EscapeApiTest, JsonBodiesHaveASmallLimit) {
  int fd = connectLoopback(portOf(server_->controlUrl()));
  ASSERT_GE(fd, 0);
  std::string head = "POST /v1/negotiate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + server_->token() +
                     "\r\nContent-Length: " + std::to_string(5 << 20) + "\r\n\r\n{\"trees\": [\"aaaa";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  std::string got = readFor(fd, 3000);
  ::close(fd);
  EXPECT_EQ(got.rfind("HTTP/1.1 413", 0), 0u) << got;
  EXPECT_NE(got.find("too large (limit 4194304 bytes; the API takes JSON bodies of up to 4 MiB)"), std::string::npos) << got;
  auto r = server_->control("POST", "/v1/negotiate", R"({"trees": [], "files": []})");
  EXPECT_EQ(r.status, 200) << r.body;
}

// A large authenticated upload streams to disk: the server's memory does
// not grow by its size, and the blob is checked against its name.
TEST_F(EscapeApiTest, ALargeUploadStreamsToDiskAndIsChecked) {
  std::string bytes(160 << 20, 'q');
  bytes[12345] = 'r';
  std::string hash = sha256Hex(bytes);
  uint64_t before = statusField(server_->pid(), "VmHWM");
  auto r = server_->control("PUT", "/v1/blobs/" + hash, bytes);
  EXPECT_EQ(r.status, 201) << r.body;
  EXPECT_LT(statusField(server_->pid(), "VmHWM"), before + (48u << 20));
  EXPECT_EQ(server_->control("HEAD", "/v1/blobs/" + hash).status, 200);
  // Wrong bytes under a name: refused, nothing stored.
  std::string other = sha256Hex("something else");
  r = server_->control("PUT", "/v1/blobs/" + other, bytes);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("nothing was stored"), std::string::npos) << r.body;
  EXPECT_EQ(server_->control("HEAD", "/v1/blobs/" + other).status, 404);
  // Nothing is left in the store's temp folder.
  EXPECT_TRUE(std::filesystem::is_empty(server_->dataDir() + "/blobs/tmp"));
}

// A manifest nested 70,000 deep once overflowed the server's stack.
TEST_F(EscapeApiTest, ADeeplyNestedManifestIsRefusedAndTheServerStaysUp) {
  std::string manifest = std::string(70000, '[') + std::string(70000, ']');
  std::string body = "{\"root\": \"" + std::string(64, 'a') + "\", \"manifest\": " + manifest + "}";
  auto r = server_->control("POST", "/v1/apps/deep/deployments", body);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_NE(r.body.find("levels deep"), std::string::npos) << r.body;
  // Through the CLI: nubo.json itself.
  std::string dir = tmp_->sub("deep");
  writeFile(dir + "/index.html", "hi");
  writeFile(dir + "/nubo.json", "{\"env\": {\"A\": " + manifest + "}}");
  auto cli = server_->nubo({"deploy", dir, "--app", "deep"});
  EXPECT_EQ(cli.exit_code, 2) << cli.err;
  EXPECT_NE(cli.err.find("levels deep"), std::string::npos) << cli.err;
  EXPECT_EQ(server_->control("GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace nubo::testing_util
