// What egress.cc and egress_namespace.cc share: addresses and nftables.
// Internal to the runtime's egress networks (runtime/egress.h).
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace nubo::runtime::egress_detail {

// An IPv4 network; the first address is the host's gateway for sandboxes.
struct Subnet {
  uint32_t base = 0;  // host order
  int prefix = 0;
  uint32_t gateway() const { return base + 1; }
  uint32_t size() const { return prefix == 0 ? 0xffffffffu : (1u << (32 - prefix)); }
};

// "a.b.c.d/n", with no host bits set. `what` names the flag in errors.
Result<Subnet> parseCidr(const std::string& text, const std::string& what);
// --sandbox-subnet: a /8 to /28.
Result<Subnet> parseSubnet(const std::string& text);
std::string ipText(uint32_t host_order);
uint32_t randomWord();
// The host ends' name prefix of this server's sandboxes ("nubo" + tag).
std::string hostPrefix(const std::string& tag);
// Runs nft commands (libnftables); their output, or the error naming `what`.
Result<std::string> runNft(const std::string& commands, const std::string& what, bool dry_run = false);

}  // namespace nubo::runtime::egress_detail
