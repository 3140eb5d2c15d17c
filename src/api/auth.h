// Authenticator: who a request is. Checks "Authorization: Bearer <token>"
// against the token hashes in the MetadataStore (tokens themselves are never
// stored) and says what the token may do: its role and the apps it is
// scoped to. kUnauthenticated (401) for a missing, unknown, revoked or
// expired token, with a message saying how to fix it; kPermissionDenied
// (403) from Principal's checks, naming the role or the app that is
// lacking. Thread-safe.
#pragma once

#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "store/metadata_store.h"

namespace nubo::api {

// Ordered: each role may do what the ones below it may.
//   viewer:   read (lists, logs, build logs, instances, audit) of its apps
//   deployer: and deploy, redeploy, move aliases, env and secrets of its apps
//             (unscoped: create apps too)
//   admin:    and everything else: tokens, domains, app removal, gc
enum class Role { kViewer = 0, kDeployer = 1, kAdmin = 2 };
std::string_view roleName(Role r);
std::optional<Role> roleFromName(std::string_view s);

// A token that authenticated.
struct Principal {
  std::string name;  // the token's name: the actor recorded on what it does
  Role role = Role::kViewer;
  std::vector<std::string> apps;  // empty: every app

  bool allApps() const { return apps.empty(); }
  bool mayUse(std::string_view app) const;
  // OK, or kPermissionDenied naming the role needed.
  Status require(Role needed, std::string_view what) const;
  // OK, or kPermissionDenied naming the app and the ones it may use.
  Status requireApp(std::string_view app) const;
};

class Authenticator {
 public:
  Authenticator(store::MetadataStore& store, Clock& clock) : store_(store), clock_(clock) {}

  Result<Principal> authenticate(std::string_view authorization_header);

  // Stores the hash of `token` as `rec` (whose hash is set here), so the
  // token authenticates.
  Status registerToken(std::string_view token, store::TokenRecord rec);

 private:
  // How often a token's last use is written (each use would be a write).
  static constexpr int64_t kTouchEveryMs = 60'000;

  store::MetadataStore& store_;
  Clock& clock_;
  std::mutex mu_;
  std::unordered_map<std::string, int64_t> touched_;  // token id -> last written use; guarded by mu_
};

// Token names: 1 to 63 of a-z 0-9 - _ . starting with a letter or digit.
Status validateTokenName(std::string_view name);

}  // namespace nubo::api
