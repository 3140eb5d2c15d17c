#include "api/auth.h"

#include "common/ids.h"
#include "common/sha256.h"

namespace nubo::api {

Result<std::string> Authenticator::authenticate(std::string_view header) {
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
      return Unauthenticated("invalid token; check NUBO_TOKEN or run `nubo login` with a valid token");
    }
    return rec.status();
  }
  return rec->name;
}

Status Authenticator::registerToken(std::string_view token, std::string_view name, int64_t now_ms) {
  store::TokenRecord rec;
  rec.id = "t" + newDeploymentId().substr(1);
  rec.name = std::string(name);
  rec.hash = sha256Hex(token);
  rec.created_ms = now_ms;
  return store_.putToken(rec);
}

}  // namespace nubo::api
