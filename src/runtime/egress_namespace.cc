// Entering a sandbox's egress network: a veth pair (rtnetlink through
// libnl-route) or slirp4netns (runtime/egress.h is the contract).
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <sstream>

#include "common/fs.h"
#include "runtime/egress.h"
#include "runtime/egress_detail.h"

namespace nubo::runtime {

using namespace egress_detail;

namespace {

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

}  // namespace

Result<std::string> enterEgressNamespace(const EgressOptions& opts) {
  switch (opts.mode) {
    case EgressOptions::Mode::kVeth: return enterVeth(opts);
    case EgressOptions::Mode::kSlirp: return enterSlirp(opts);
    case EgressOptions::Mode::kHost: break;
  }
  return FailedPrecondition("no egress network on this server");
}

}  // namespace nubo::runtime
