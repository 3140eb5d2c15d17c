// Random identifiers and names.
//
// Deployment ids are "d" followed by 12 base32 characters (lowercase letters
// and digits 2-7): short, DNS-label safe, 60 bits of randomness. App and alias
// names follow ^[a-z][a-z0-9-]{0,62}$; alias names additionally may not
// contain "--" (it separates alias from app in host names) nor look like a
// deployment id (which would make "<x>--<app>" ambiguous).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo {

// Cryptographically random bytes from the kernel (getrandom).
std::string randomBytes(size_t n);
// Whether two secrets (tokens, keys) are equal, in time that does not
// depend on where they differ (OpenSSL's CRYPTO_memcmp).
bool sameSecret(std::string_view a, std::string_view b);

std::string newDeploymentId();
bool isDeploymentId(std::string_view s);

// A bearer token: "nubo_" + 43 base32 characters (215 bits).
std::string newToken();

// OK or InvalidArgument naming `field` and the rule.
Status validateAppName(std::string_view name, std::string_view field = "app");
Status validateAliasName(std::string_view name, std::string_view field = "alias");

}  // namespace nubo
