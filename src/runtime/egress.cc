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

namespace nubo::runtime {
namespace {

constexpr const char* kHostPrefix = "nubo";  // host ends: nubo<tag><random hex>, 15 characters
constexpr int kNatPortsFrom = 32768;         // sandboxes' connections leave from ports from here up

struct Subnet {
  uint32_t base = 0;  // host order
  int prefix = 0;
  uint32_t gateway() const { return base + 1; }
  uint32_t size() const { return prefix == 0 ? 0xffffffffu : (1u << (32 - prefix)); }
};

std::string ipText(uint32_t host_order);
Result<std::string> runNft(const std::string& commands, const std::string& what, bool dry_run = false);

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

// ---- rtnetlink through libnl-route ----------------------------------------------

struct SockDeleter {
  void operator()(nl_sock* s) const { nl_socket_free(s); }
};
using Sock = std::unique_ptr<nl_sock, SockDeleter>;
struct LinkDeleter {
  void operator()(rtnl_link* l) const { rtnl_link_put(l); }
};
using Link = std::unique_ptr<rtnl_link, LinkDeleter>;
struct AddrDeleter {
  void operator()(nl_addr* a) const { nl_addr_put(a); }
};
using Addr = std::unique_ptr<nl_addr, AddrDeleter>;

Status nlFailed(const std::string& what, int err) {
  return Internal(what + ": " + nl_geterror(err));
}

Result<Sock> routeSocket() {
  Sock s(nl_socket_alloc());
  if (!s) return Internal("netlink: out of memory");
  if (int err = nl_connect(s.get(), NETLINK_ROUTE); err < 0) return nlFailed("netlink: connect", err);
  return s;
}

Addr address(uint32_t host_order, int prefix) {
  uint32_t n = htonl(host_order);
  Addr a(nl_addr_build(AF_INET, &n, sizeof n));
  if (a) nl_addr_set_prefixlen(a.get(), prefix);
  return a;
}

Result<int> ifindex(nl_sock* s, const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(s, 0, name.c_str(), &raw); err < 0) return nlFailed("find " + name, err);
  Link l(raw);
  return rtnl_link_get_ifindex(l.get());
}

Status linkUp(nl_sock* s, const std::string& name) {
  rtnl_link* raw = nullptr;
  if (int err = rtnl_link_get_kernel(s, 0, name.c_str(), &raw); err < 0) return nlFailed("find " + name, err);
  Link l(raw);
  Link change(rtnl_link_alloc());
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(s, l.get(), change.get(), 0); err < 0) return nlFailed("bring " + name + " up", err);
  return Status::Ok();
}

Status addAddress(nl_sock* s, int index, uint32_t ip) {
  std::unique_ptr<rtnl_addr, void (*)(rtnl_addr*)> a(rtnl_addr_alloc(), rtnl_addr_put);
  Addr local = address(ip, 32);
  if (!a || !local) return Internal("netlink: out of memory");
  rtnl_addr_set_ifindex(a.get(), index);
  rtnl_addr_set_local(a.get(), local.get());
  if (int err = rtnl_addr_add(s, a.get(), 0); err < 0) return nlFailed("add address " + ipText(ip), err);
  return Status::Ok();
}

// A route to `dst`/`prefix` through interface `index` (and `gateway`, if
// not 0). NLM_F_EXCL: an identical route that exists already is EEXIST.
int addRoute(nl_sock* s, int index, uint32_t dst, int prefix, uint32_t gateway) {
  std::unique_ptr<rtnl_route, void (*)(rtnl_route*)> r(rtnl_route_alloc(), rtnl_route_put);
  Addr d = address(dst, prefix);
  if (!r || !d) return -NLE_NOMEM;
  rtnl_route_set_table(r.get(), RT_TABLE_MAIN);
  rtnl_route_set_protocol(r.get(), RTPROT_STATIC);
  rtnl_route_set_scope(r.get(), gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK);
  rtnl_route_set_dst(r.get(), d.get());
  rtnl_nexthop* nh = rtnl_route_nh_alloc();
  if (!nh) return -NLE_NOMEM;
  rtnl_route_nh_set_ifindex(nh, index);
  Addr gw;
  if (gateway) {
    gw = address(gateway, 32);
    rtnl_route_nh_set_gateway(nh, gw.get());
  }
  rtnl_route_add_nexthop(r.get(), nh);  // the route owns it now
  return rtnl_route_add(s, r.get(), NLM_F_EXCL);
}

// Runs in the host namespace: the veth pair, its host end up with the
// gateway address, and a host route to a free address of the subnet.
Result<uint32_t> plugHostEnd(const Subnet& subnet, const std::string& tag, int inner_ns) {
  ASSIGN_OR_RETURN(Sock s, routeSocket());
  // The server's prefix filled up to 15 characters with random hex; a name
  // in use is refused (NLM_F_EXCL) and another one tried.
  std::string prefix = hostPrefix(tag);
  std::string name;
  for (int attempt = 0;; ++attempt) {
    char random[24];
    std::snprintf(random, sizeof random, "%08x%08x", randomWord(), randomWord());
    name = prefix + std::string(random).substr(0, IFNAMSIZ - 1 - prefix.size());
    Link veth(rtnl_link_veth_alloc());
    if (!veth) return Internal("netlink: out of memory");
    rtnl_link_set_name(veth.get(), name.c_str());
    Link peer(rtnl_link_veth_get_peer(veth.get()));
    rtnl_link_set_name(peer.get(), "eth0");
    rtnl_link_set_ns_fd(peer.get(), inner_ns);
    int err = rtnl_link_add(s.get(), veth.get(), NLM_F_CREATE | NLM_F_EXCL);
    if (err == 0) break;
    if (err != -NLE_EXIST || attempt == 8) return nlFailed("create the veth pair " + name, err);
  }
  ASSIGN_OR_RETURN(int index, ifindex(s.get(), name));
  RETURN_IF_ERROR(addAddress(s.get(), index, subnet.gateway()));
  RETURN_IF_ERROR(linkUp(s.get(), name));
  // An address of the subnet no other sandbox on this machine has: the
  // host route to it is the claim (a second one is refused).
  uint32_t usable = subnet.size() - 3;  // not the network, the gateway or the broadcast address
  for (int attempt = 0; attempt < 256; ++attempt) {
    uint32_t ip = subnet.base + 2 + randomWord() % usable;
    int err = addRoute(s.get(), index, ip, 32, 0);
    if (err == 0) return ip;
    if (err != -NLE_EXIST) return nlFailed("route " + ipText(ip) + " to " + name, err);
  }
  return ResourceExhausted("no free sandbox address in " + ipText(subnet.base) + "/" +
                           std::to_string(subnet.prefix) + " after 256 tries; use a larger --sandbox-subnet");
}

// Runs inside the new namespace: loopback, eth0 with the address, a route
// to the gateway and the default route through it.
Status plugInnerEnd(const Subnet& subnet, uint32_t ip) {
  ASSIGN_OR_RETURN(Sock s, routeSocket());
  RETURN_IF_ERROR(linkUp(s.get(), "lo"));
  ASSIGN_OR_RETURN(int index, ifindex(s.get(), "eth0"));
  RETURN_IF_ERROR(addAddress(s.get(), index, ip));
  RETURN_IF_ERROR(linkUp(s.get(), "eth0"));
  if (int err = addRoute(s.get(), index, subnet.gateway(), 32, 0); err < 0) return nlFailed("route the gateway", err);
  if (int err = addRoute(s.get(), index, 0, 0, subnet.gateway()); err < 0) return nlFailed("add the default route", err);
  return Status::Ok();
}

Result<std::string> enterVeth(const EgressOptions& opts) {
  ASSIGN_OR_RETURN(Subnet subnet, parseSubnet(opts.subnet));
  UniqueFd host(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!host.valid()) return Internal(std::string("open the host's network namespace: ") + std::strerror(errno));
  if (::unshare(CLONE_NEWNET) != 0) return Internal(std::string("unshare a network namespace: ") + std::strerror(errno));
  UniqueFd inner(::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!inner.valid()) return Internal(std::string("open the new network namespace: ") + std::strerror(errno));
  if (::setns(host.get(), CLONE_NEWNET) != 0) return Internal(std::string("return to the host's namespace: ") + std::strerror(errno));
  // From here a failure leaves nothing behind: the pair goes with the new
  // namespace, which goes when this process exits.
  Result<uint32_t> ip = plugHostEnd(subnet, opts.tag, inner.get());
  if (::setns(inner.get(), CLONE_NEWNET) != 0) return Internal(std::string("enter the new namespace: ") + std::strerror(errno));
  if (!ip.ok()) return ip.status();
  RETURN_IF_ERROR(plugInnerEnd(subnet, *ip));
  // Nothing connects in, from the host or anywhere else: the sandbox's own
  // rules (it has no capability to change them), so the host keeps no rule
  // on its own traffic for this.
  RETURN_IF_ERROR(runNft("table inet sandbox {\n"
                         "  chain input {\n"
                         "    type filter hook input priority filter; policy drop;\n"
                         "    iif \"lo\" accept\n"
                         "    ct state established,related accept\n"
                         "  }\n"
                         "}\n",
                         "close the sandbox to inbound connections").status());
  return ipText(*ip);
}

// ---- slirp4netns ---------------------------------------------------------------

bool readByte(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) return false;
  char c;
  return ::read(fd, &c, 1) == 1;
}

Result<std::string> enterSlirp(const EgressOptions& opts) {
  int go[2], ready[2];
  if (::pipe2(go, O_CLOEXEC) != 0) return Internal(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    ::close(go[0]);
    ::close(go[1]);
    return Internal(std::string("pipe: ") + std::strerror(errno));
  }
  pid_t self = ::getpid();
  pid_t child = ::fork();
  if (child < 0) return Internal(std::string("fork: ") + std::strerror(errno));
  if (child == 0) {
    // Still in the server's network namespace (and, unprivileged, in the
    // helper's user namespace, which owns the one slirp4netns joins): it
    // opens the sandbox's connections from here, as this user's sockets.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    ::close(go[1]);
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(1);
    // Only the ready pipe is kept (as fd 3), not the instance's channel.
    if (::dup2(ready[1], 3) != 3) ::_exit(1);
    ::close_range(4, ~0u, 0);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    ::dup2(null, 2);
    // Its descriptors bound the sandbox's connections.
    rlim_t fds = static_cast<rlim_t>(opts.max_connections) + 32;
    struct rlimit nofile = {fds, fds};
    ::setrlimit(RLIMIT_NOFILE, &nofile);
    std::string ns = "/proc/" + std::to_string(self) + "/ns/net";
    const char* argv[] = {opts.slirp4netns.c_str(), "--configure", "--mtu=65520", "--disable-host-loopback",
                          "--enable-sandbox", "--enable-seccomp", "--ready-fd=3", "--netns-type=path",
                          ns.c_str(), "tap0", nullptr};
    ::execv(argv[0], const_cast<char**>(argv));
    ::_exit(127);
  }
  ::close(go[0]);
  ::close(ready[1]);
  UniqueFd go_w(go[1]), ready_r(ready[0]);
  if (::unshare(CLONE_NEWNET) != 0) return Internal(std::string("unshare a network namespace: ") + std::strerror(errno));
  if (::write(go_w.get(), "g", 1) != 1) return Internal("could not start slirp4netns");
  if (!readByte(ready_r.get(), 5000)) {
    int status = 0;
    pid_t done = ::waitpid(child, &status, WNOHANG);
    return Unavailable(opts.slirp4netns + (done == child ? " exited before it was ready (is /dev/net/tun there and "
                                                           "usable by this user?)"
                                                         : " did not get ready within 5 s"));
  }
  ASSIGN_OR_RETURN(Sock s, routeSocket());
  RETURN_IF_ERROR(linkUp(s.get(), "lo"));
  return std::string("10.0.2.100");
}

// nubo_<tag>_<pid>: the pid says whether the server that made it still runs.
std::string tableName(const EgressOptions& opts) { return "nubo_" + opts.tag + "_" + std::to_string(::getpid()); }

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

}  // namespace

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

Result<std::string> enterEgressNamespace(const EgressOptions& opts) {
  switch (opts.mode) {
    case EgressOptions::Mode::kVeth: return enterVeth(opts);
    case EgressOptions::Mode::kSlirp: return enterSlirp(opts);
    case EgressOptions::Mode::kHost: break;
  }
  return FailedPrecondition("no egress network on this server");
}

}  // namespace nubo::runtime
