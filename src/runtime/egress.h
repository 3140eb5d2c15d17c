// Egress networks: what builds and permissions.network instances get
// instead of the host's network namespace. Each sandbox has a network
// namespace of its own that can open connections out and nothing else:
//
//   - the host's loopback is not reachable (127.0.0.1 inside is the
//     sandbox's own), nor is any address of the node itself (the host
//     rejects what a sandbox sends to it), nor the host's abstract unix
//     sockets (they belong to the host's namespace);
//   - nothing reaches a sandbox from outside: no inbound connection from
//     the host, its networks or another sandbox (the sandbox's own
//     nftables table, which it cannot change, and the host's forward
//     rules), and a port bound inside is bound in the sandbox only;
//   - link-local (cloud metadata at 169.254.169.254), multicast, broadcast
//     and the operator's `deny` networks are refused;
//   - a sandbox holds at most `max_connections` connections at a time.
//
// Two ways to build one, chosen by what the server may do:
//
//   kVeth (nubo runs as root): a veth pair per sandbox, the host end named
//   nubo<tag><6 hex> with the gateway address, the sandbox end eth0 with
//   one address of `subnet` (a /32 routed on the host: the kernel refuses a
//   second identical route, so the choice is unique across every server on
//   the machine). installHostRules() sets the nftables table
//   nubo_<tag>_<pid>, matching this server's interfaces by name: it
//   drops, rejects, limits and masquerades, and exempts loopback and the
//   server's ports from connection tracking. Servers on one machine have
//   their own tags (and tables), so each keeps its own limits;
//   removeHostRules() drops the table at shutdown, and installHostRules()
//   those of servers no longer running (killed before they could).
//
//   kSlirp (nubo does not run as root): slirp4netns, a user-space network
//   stack that opens the sandbox's connections as the server's own
//   sockets, with host loopback disabled and a descriptor limit bounding
//   the connections. It cannot keep the node's other addresses or the
//   deny list out, so --sandbox=strict refuses networked sandboxes then.
//
// kHost is no egress network: networked sandboxes share the host's
// namespace (the server warns; --sandbox=strict refuses them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/json.h"
#include "common/status.h"

namespace nubo::runtime {

struct EgressOptions {
  enum class Mode { kHost, kVeth, kSlirp };
  Mode mode = Mode::kHost;
  std::string tag = "0";                 // this server's, 1-5 hex digits: names its interfaces and table
  std::string subnet = "10.213.0.0/16";  // sandbox addresses (kVeth); its first address is the gateway
  int max_connections = 256;             // per sandbox, at a time
  std::vector<std::string> dns;          // resolvers for the sandbox's /etc/resolv.conf (empty: the host's)
  std::vector<std::string> deny;         // IPv4 networks (CIDR) sandboxes may not reach (kVeth)
  std::string slirp4netns = "/usr/bin/slirp4netns";

  // Whether networked sandboxes are kept from every address of the node.
  bool isolatesHost() const { return mode == Mode::kVeth; }
  const char* modeName() const;

  Json toJson() const;
  static Result<EgressOptions> fromJson(const Json& j);
};

// Checks the options, naming the flag to fix: the subnet parses and leaves
// room, the deny list and resolvers are addresses, limits are in range.
Status validateEgress(const EgressOptions& opts);

// Host side (kVeth). checkHostRules(): whether installHostRules() would
// work (a dry run), before anything is started. installHostRules(), once
// the server listens on `ports` and before any sandbox runs: IPv4
// forwarding on and this server's nftables table in place (libnftables),
// replaced atomically. Loopback and `ports` (below 32768) are exempt from
// connection tracking, which sandbox traffic needs and the gateway's
// clients need not pay for.
Status checkHostRules(const EgressOptions& opts);
Status installHostRules(const EgressOptions& opts, const std::vector<int>& ports);
// At shutdown: the table goes (interfaces go with their namespaces).
void removeHostRules(const EgressOptions& opts);

// What /etc/resolv.conf says inside an egress sandbox: opts.dns, or the
// host's file. FailedPrecondition when the host names only resolvers on
// its loopback (no sandbox can reach them): set --sandbox-dns.
Result<std::string> sandboxResolvConf(const EgressOptions& opts);

// In the sandbox helper, before it unshares its other namespaces (and, for
// kSlirp, after its user namespace): moves the calling single-threaded
// process into a new network namespace with egress as above and loopback
// up. kVeth needs CAP_NET_ADMIN in the host namespace; kSlirp starts
// slirp4netns (a child of the caller that dies with it) and waits until it
// is ready. Returns the sandbox's address.
Result<std::string> enterEgressNamespace(const EgressOptions& opts);

}  // namespace nubo::runtime
