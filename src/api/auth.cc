#include "api/auth.h"

#include "common/ids.h"
#include "common/sha256.h"

namespace nubo::api {
namespace {

std::string appList(const std::vector<std::string>& apps) {
  std::string out;
  for (const auto& a : apps) out += (out.empty() ? "" : ", ") + a;
  return out;
}

}  // namespace

std::string_view roleName(Role r) {
  switch (r) {
    case Role::kViewer: return "viewer";
    case Role::kDeployer: return "deployer";
    case Role::kAdmin: return "admin";
  }
  return "viewer";
}

std::optional<Role> roleFromName(std::string_view s) {
  if (s == "viewer") return Role::kViewer;
  if (s == "deployer") return Role::kDeployer;
  if (s == "admin") return Role::kAdmin;
  return std::nullopt;
}

bool Principal::mayUse(std::string_view app) const {
  if (apps.empty()) return true;
  for (const auto& a : apps) {
    if (a == app) return true;
  }
  return false;
}

Status Principal::require(Role needed, std::string_view what) const {
  if (role >= needed) return Status::Ok();
  std::string roles = needed == Role::kAdmin ? "an admin token" : "a deployer or admin token";
  return PermissionDenied("token " + name + " has the role " + std::string(roleName(role)) + "; " +
                          std::string(what) + " needs " + roles);
}

Status Principal::requireApp(std::string_view app) const {
  if (mayUse(app)) return Status::Ok();
  return PermissionDenied("token " + name + " may act on app" + (apps.size() > 1 ? "s " : " ") + appList(apps) +
                          " only, not on app " + std::string(app));
}

Result<Principal> Authenticator::authenticate(std::string_view header) {
  constexpr std::string_view kBearer = "Bearer ";
  if (header.empty()) {
    return Unauthenticated("missing \"Authorization: Bearer <token>\"; run `nubo login` or set NUBO_TOKEN");
  }
  if (header.size() <= kBearer.size() || header.substr(0, kBearer.size()) != kBearer) {
    return Unauthenticated("the Authorization header must be \"Bearer <token>\"");
  }
  std::string_view token = header.substr(kBearer.size());
  auto rec = store_.findTokenByHash(sha256Hex(token));
  if (!rec.ok()) {
    if (rec.status().code() == Code::kNotFound) {
      return Unauthenticated(
          "invalid token (unknown, or revoked); check NUBO_TOKEN or run `nubo login` with a valid token");
    }
    return rec.status();
  }
  int64_t now = clock_.nowMillis();
  if (rec->expires_ms > 0 && rec->expires_ms <= now) {
    return Unauthenticated("token " + rec->name + " expired at " + formatUtc(rec->expires_ms) +
                           "; ask an admin for a new one (nubo tokens create)");
  }
  auto role = roleFromName(rec->role);
  if (!role) return Internal("token " + rec->name + " has an unknown role " + rec->role);
  bool touch = false;
  {
    std::lock_guard lock(mu_);
    int64_t& last = touched_[rec->id];
    last = std::max(last, rec->last_used_ms);
    if (now - last >= kTouchEveryMs) {
      last = now;
      touch = true;
    }
  }
  if (touch) (void)store_.touchToken(rec->id, now);  // best effort: a failure refuses nothing
  return Principal{rec->name, *role, rec->apps};
}

Status Authenticator::registerToken(std::string_view token, store::TokenRecord rec) {
  if (rec.id.empty()) rec.id = "t" + newDeploymentId().substr(1);
  rec.hash = sha256Hex(token);
  return store_.putToken(rec);
}

Status validateTokenName(std::string_view name) {
  auto ok = [](char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (!first && (c == '-' || c == '_' || c == '.'));
  };
  if (name.empty() || name.size() > 63) return InvalidArgument("a token name must have 1 to 63 characters");
  for (size_t i = 0; i < name.size(); ++i) {
    if (!ok(name[i], i == 0)) {
      return InvalidArgument("token name \"" + std::string(name) +
                             "\" may use only a-z, 0-9, '-', '_' and '.', starting with a letter or digit");
    }
  }
  return Status::Ok();
}

}  // namespace nubo::api
