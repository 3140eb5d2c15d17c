#include "common/ids.h"

#include <openssl/crypto.h>

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace nubo {
namespace {

constexpr char kBase32[] = "abcdefghijklmnopqrstuvwxyz234567";

std::string randomBase32(size_t chars) {
  std::string raw = randomBytes(chars);
  std::string out(chars, 'a');
  for (size_t i = 0; i < chars; ++i) out[i] = kBase32[static_cast<uint8_t>(raw[i]) & 31];
  return out;
}

bool isNameChar(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

Status checkName(std::string_view name, std::string_view field) {
  std::string f(field);
  if (name.empty()) return InvalidArgument(f + " is empty; use lowercase letters, digits and '-'");
  if (name.size() > 63) {
    return InvalidArgument(f + " \"" + std::string(name.substr(0, 70)) +
                           "\" is longer than 63 characters");
  }
  if (!(name[0] >= 'a' && name[0] <= 'z')) {
    return InvalidArgument(f + " \"" + std::string(name) + "\" must start with a lowercase letter (a-z)");
  }
  for (char c : name) {
    if (!isNameChar(c)) {
      return InvalidArgument(f + " \"" + std::string(name) +
                             "\" may only contain lowercase letters, digits and '-'");
    }
  }
  return Status::Ok();
}

}  // namespace

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      std::abort();  // no kernel randomness: nothing safe can be done
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

std::string newDeploymentId() { return "d" + randomBase32(12); }

bool isDeploymentId(std::string_view s) {
  if (s.size() != 13 || s[0] != 'd') return false;
  for (char c : s.substr(1)) {
    if (!((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7'))) return false;
  }
  return true;
}

std::string newToken() { return "nubo_" + randomBase32(43); }

Status validateAppName(std::string_view name, std::string_view field) {
  return checkName(name, field);
}

Status validateAliasName(std::string_view name, std::string_view field) {
  RETURN_IF_ERROR(checkName(name, field));
  if (name.find("--") != std::string_view::npos) {
    return InvalidArgument(std::string(field) + " \"" + std::string(name) +
                           "\" may not contain \"--\" (it separates alias and app in host names)");
  }
  if (isDeploymentId(name)) {
    return InvalidArgument(std::string(field) + " \"" + std::string(name) +
                           "\" looks like a deployment id; choose another name");
  }
  return Status::Ok();
}

bool sameSecret(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace nubo
