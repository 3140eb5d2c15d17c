#include "runtime/egress.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>

#include "common/fs.h"
#include "runtime/egress_detail.h"

namespace nubo::runtime {
namespace egress_detail {

namespace {
constexpr const char* kHostPrefix = "nubo";  // host ends: nubo<tag><random hex>, 15 characters
constexpr int kNatPortsFrom = 32768;         // sandboxes' connections leave from ports from here up
// nubo_<tag>_<pid>: the pid says whether the server that made it still runs.
std::string tableName(const EgressOptions& opts) { return "nubo_" + opts.tag + "_" + std::to_string(::getpid()); }
}  // namespace

// "a.b.c.d/n", with no host bits set. `what` names the flag in errors.
Result<Subnet> parseCidr(const std::string& text, const std::string& what) {
  auto slash = text.find('/');
  std::string named = what + " \"" + text + "\"";
  if (slash == std::string::npos) return InvalidArgument(named + ": write it as ADDRESS/PREFIX, e.g. 10.213.0.0/16");
  in_addr a{};
  if (::inet_pton(AF_INET, text.substr(0, slash).c_str(), &a) != 1) {
    return InvalidArgument(named + ": \"" + text.substr(0, slash) + "\" is not an IPv4 address");
  }
  Subnet s;
  std::string len = text.substr(slash + 1);
  if (len.empty() || len.size() > 2 || len.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(len) > 32) {
    return InvalidArgument(named + ": the prefix length must be a number from 0 to 32");
  }
  s.prefix = std::stoi(len);
  s.base = ntohl(a.s_addr);
  uint32_t mask = s.prefix == 0 ? 0 : 0xffffffffu << (32 - s.prefix);
  if ((s.base & ~mask) != 0) {
    return InvalidArgument(named + ": host bits are set; the network is " + ipText(s.base & mask) + "/" +
                           std::to_string(s.prefix));
  }
  return s;
}

Result<Subnet> parseSubnet(const std::string& text) {
  ASSIGN_OR_RETURN(Subnet s, parseCidr(text, "--sandbox-subnet"));
  if (s.prefix < 8 || s.prefix > 28) {
    return InvalidArgument("--sandbox-subnet \"" + text +
                           "\": the prefix length must be between 8 and 28 (room for sandboxes; a /16 holds 65,000)");
  }
  return s;
}

std::string ipText(uint32_t host_order) {
  in_addr a{htonl(host_order)};
  char buf[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

uint32_t randomWord() {
  uint32_t v = 0;
  while (::getrandom(&v, sizeof v, 0) != sizeof v) {
  }
  return v;
}

std::string hostPrefix(const std::string& tag) { return kHostPrefix + tag; }

// Matched by interface name: this server's sandboxes are nubo<tag>*, and
// every server's are nubo* (none may be reached from outside, whichever
// server's table sees the packet first).
// Connection tracking (which the forward and nat rules need) would
// otherwise follow every packet on the host: loopback, and the server's own
// planes on every other interface (`ports`), are exempt, and masquerading
// takes source ports above them, so no sandbox connection shares a port
// with them.
std::string ruleset(const EgressOptions& opts, const std::vector<int>& ports) {
  std::string exempt;
  for (int p : ports) {
    if (p > 0 && p < kNatPortsFrom) exempt += (exempt.empty() ? "" : ", ") + std::to_string(p);
  }
  std::string mine = "\"" + hostPrefix(opts.tag) + "*\"", any = std::string("\"") + kHostPrefix + "*\"";
  std::string refused = "169.254.0.0/16, 224.0.0.0/4, 255.255.255.255";
  for (const auto& d : opts.deny) refused += ", " + d;
  std::ostringstream r;
  r << "add table inet " << tableName(opts) << "\n"
    << "flush table inet " << tableName(opts) << "\n"
    << "table inet " << tableName(opts) << " {\n"
    << "  set connections { type ifname; size 65535; flags dynamic; }\n"
    // Nothing a sandbox sends is for the host itself (any of its
    // addresses, the gateway, loopback services): dropped before anything
    // else looks at it. (reject is not allowed this early.)
    << "  chain untracked_in {\n"
    << "    type filter hook prerouting priority raw; policy accept;\n"
    << "    iif \"lo\" notrack\n"
    << "    iifname " << mine << " fib daddr type { local, broadcast, multicast } drop\n"
    << (exempt.empty() ? "" : "    iifname != " + any + " tcp dport { " + exempt + " } notrack\n")
    << "  }\n"
    << "  chain untracked_out {\n"
    << "    type filter hook output priority raw; policy accept;\n"
    << "    oif \"lo\" notrack\n"
    << (exempt.empty() ? "" : "    tcp sport { " + exempt + " } notrack\n")
    << "  }\n"
    // Nothing reaches a sandbox unasked from another one (each sandbox's
    // own rules keep out the host and the rest).
    << "  chain forward {\n"
    << "    type filter hook forward priority filter - 5; policy accept;\n"
    << "    oifname " << any << " ct state established,related accept\n"
    << "    oifname " << any << " drop\n"
    << "    iifname " << mine << " ip daddr { " << refused << " } reject with icmpx admin-prohibited\n"
    << "    iifname " << mine << " meta nfproto ipv6 reject with icmpx admin-prohibited\n"
    << "    iifname " << mine << " ct state new add @connections { iifname ct count over " << opts.max_connections
    << " } reject with icmpx admin-prohibited\n"
    << "  }\n"
    << "  chain postrouting {\n"
    << "    type nat hook postrouting priority srcnat - 5; policy accept;\n"
    << "    iifname " << mine << " meta l4proto { tcp, udp } masquerade to :" << kNatPortsFrom << "-65535\n"
    << "    iifname " << mine << " masquerade\n"
    << "  }\n"
    << "}\n";
  return r.str();
}

// Runs nft commands; returns what they print.
Result<std::string> runNft(const std::string& commands, const std::string& what, bool dry_run) {
  std::unique_ptr<nft_ctx, void (*)(nft_ctx*)> nft(nft_ctx_new(NFT_CTX_DEFAULT), nft_ctx_free);
  if (!nft) return Internal("libnftables: cannot make a context");
  nft_ctx_set_dry_run(nft.get(), dry_run);
  nft_ctx_buffer_output(nft.get());
  nft_ctx_buffer_error(nft.get());
  if (nft_run_cmd_from_buffer(nft.get(), commands.c_str()) != 0) {
    std::string err = nft_ctx_get_error_buffer(nft.get());
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return Unavailable(what + ": " + err);
  }
  return std::string(nft_ctx_get_output_buffer(nft.get()));
}

// Tables of servers that are gone (killed, so they could not remove
// theirs): every packet on the host would still pass their chains.
std::vector<std::string> staleTables() {
  auto listed = runNft("list tables inet\n", "list the nftables tables");
  std::vector<std::string> out;
  if (!listed.ok()) return out;
  std::istringstream lines(*listed);
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string table, family, name;
    if (!(words >> table >> family >> name) || name.rfind("nubo_", 0) != 0) continue;
    auto under = name.rfind('_');
    std::string pid = name.substr(under + 1);
    if (under < 5 || pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos || pid.size() > 9) continue;
    if (::kill(std::stoi(pid), 0) != 0 && errno == ESRCH) out.push_back(name);
  }
  return out;
}

}  // namespace egress_detail

using namespace egress_detail;

const char* EgressOptions::modeName() const {
  switch (mode) {
    case Mode::kVeth: return "veth";
    case Mode::kSlirp: return "slirp";
    case Mode::kHost: break;
  }
  return "host";
}

Json EgressOptions::toJson() const {
  return {{"mode", modeName()}, {"tag", tag},   {"subnet", subnet},          {"max_connections", max_connections},
          {"dns", dns},         {"deny", deny}, {"slirp4netns", slirp4netns}};
}

Result<EgressOptions> EgressOptions::fromJson(const Json& j) {
  EgressOptions o;
  std::string mode = j.value("mode", std::string("host"));
  if (mode == "veth") o.mode = Mode::kVeth;
  else if (mode == "slirp") o.mode = Mode::kSlirp;
  else if (mode == "host") o.mode = Mode::kHost;
  else return InvalidArgument("egress mode \"" + mode + "\": expected veth, slirp or host");
  o.tag = j.value("tag", o.tag);
  o.subnet = j.value("subnet", o.subnet);
  o.max_connections = j.value("max_connections", o.max_connections);
  o.dns = j.value("dns", std::vector<std::string>{});
  o.deny = j.value("deny", std::vector<std::string>{});
  o.slirp4netns = j.value("slirp4netns", o.slirp4netns);
  RETURN_IF_ERROR(validateEgress(o));
  return o;
}

Status validateEgress(const EgressOptions& opts) {
  if (opts.tag.empty() || opts.tag.size() > 5 || opts.tag.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return InvalidArgument("egress tag \"" + opts.tag + "\": 1 to 5 lowercase hex digits");
  }
  RETURN_IF_ERROR(parseSubnet(opts.subnet).status());
  for (const auto& d : opts.deny) RETURN_IF_ERROR(parseCidr(d, "--sandbox-deny").status());
  if (opts.max_connections < 1 || opts.max_connections > 65536) {
    return InvalidArgument("--sandbox-max-connections " + std::to_string(opts.max_connections) +
                           ": must be between 1 and 65536");
  }
  for (const auto& d : opts.dns) {
    in_addr a{};
    in6_addr a6{};
    if (::inet_pton(AF_INET, d.c_str(), &a) != 1 && ::inet_pton(AF_INET6, d.c_str(), &a6) != 1) {
      return InvalidArgument("--sandbox-dns \"" + d + "\" is not an IP address");
    }
  }
  return Status::Ok();
}

Status checkHostRules(const EgressOptions& opts) {
  RETURN_IF_ERROR(validateEgress(opts));
  if (::access("/proc/sys/net/ipv4/ip_forward", W_OK) != 0) {
    return Unavailable(std::string("cannot turn on IPv4 forwarding (/proc/sys/net/ipv4/ip_forward): ") +
                       std::strerror(errno));
  }
  return runNft(ruleset(opts, {}), "cannot set the nftables table " + tableName(opts), /*dry_run=*/true).status();
}

Status installHostRules(const EgressOptions& opts, const std::vector<int>& ports) {
  RETURN_IF_ERROR(validateEgress(opts));
  UniqueFd forward(::open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC));
  if (!forward.valid() || ::write(forward.get(), "1", 1) != 1) {
    return Unavailable(std::string("cannot turn on IPv4 forwarding (/proc/sys/net/ipv4/ip_forward): ") +
                       std::strerror(errno));
  }
  // Apart, and failures ignored: another server starting now may remove
  // the same table first.
  for (const auto& name : staleTables()) (void)runNft("delete table inet " + name + "\n", "remove table " + name);
  return runNft(ruleset(opts, ports), "cannot set the nftables table " + tableName(opts)).status();
}

void removeHostRules(const EgressOptions& opts) {
  if (opts.mode != EgressOptions::Mode::kVeth) return;
  (void)runNft("delete table inet " + tableName(opts) + "\n", "remove the nftables table");
}

Result<std::string> sandboxResolvConf(const EgressOptions& opts) {
  std::string out;
  for (const auto& d : opts.dns) out += "nameserver " + d + "\n";
  if (!out.empty()) return out;
  if (opts.mode == EgressOptions::Mode::kSlirp) return std::string("nameserver 10.0.2.3\n");  // slirp4netns's forwarder
  ASSIGN_OR_RETURN(std::string host, readFile("/etc/resolv.conf", 1 << 16));
  if (opts.mode == EgressOptions::Mode::kHost) return host;
  std::istringstream lines(host);
  std::string line;
  bool reachable = false, any = false;
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::string key, value;
    if (!(words >> key >> value) || key != "nameserver") continue;
    any = true;
    if (value.rfind("127.", 0) != 0 && value != "::1") reachable = true;
  }
  if (any && !reachable) {
    return FailedPrecondition("the host's resolvers in /etc/resolv.conf are all on its loopback, which sandboxes "
                              "cannot reach; name reachable ones with --sandbox-dns IP[,IP]");
  }
  return host;
}

}  // namespace nubo::runtime
