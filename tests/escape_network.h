// Network escape attempts, shared by the suites that run them against a
// root install (veth pairs and nftables) and an unprivileged one
// (slirp4netns). A networked function, deployed by the suite, does what a
// tenant would try and answers what happened:
//   /?op=connect&host=H&port=P   one TCP connection: "connected <greeting>"
//                                or the error code
//   /?op=hold&host=H&port=P&n=N  N connections at once, held until all are
//                                settled: {"open": k, "failed": m}
//   /?op=listen&host=H&port=P    listens there (and keeps listening):
//                                "listening" or the error code
//   /?op=whoami                  {"addresses": [...], "resolv": "..."}
#pragma once

#include <string>

namespace nubo::testing_util {

inline const char* kNetworkProbeJs = R"JS(
const net = require('node:net');
const fs = require('node:fs');
const os = require('node:os');
const servers = [];

function connectOnce(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port: Number(port) });
    const timer = setTimeout(() => { s.destroy(); resolve({ ok: false, why: 'TIMEOUT', s }); }, 1500);
    s.once('data', (d) => { clearTimeout(timer); resolve({ ok: true, why: 'connected ' + String(d).trim(), s }); });
    s.once('connect', () => { setTimeout(() => { clearTimeout(timer); resolve({ ok: true, why: 'connected', s }); }, 300); });
    s.once('error', (e) => { clearTimeout(timer); resolve({ ok: false, why: e.code || String(e), s }); });
  });
}

module.exports = async (req, res) => {
  const q = new URL(req.url, 'http://x').searchParams;
  const op = q.get('op');
  if (op === 'connect') {
    const r = await connectOnce(q.get('host'), q.get('port'));
    r.s.destroy();
    return res.end(r.why);
  }
  if (op === 'hold') {
    const all = await Promise.all(Array.from({ length: Number(q.get('n')) }, () => connectOnce(q.get('host'), q.get('port'))));
    const open = all.filter((r) => r.ok).length;
    for (const r of all) r.s.destroy();
    return res.end(JSON.stringify({ open, failed: all.length - open }));
  }
  if (op === 'listen') {
    const srv = net.createServer((c) => c.end('inside\n'));
    srv.once('error', (e) => res.end(e.code || String(e)));
    srv.listen(Number(q.get('port')), q.get('host'), () => { servers.push(srv); res.end('listening'); });
    return;
  }
  if (op === 'whoami') {
    const addresses = [];
    for (const list of Object.values(os.networkInterfaces())) {
      for (const a of list) if (a.family === 'IPv4' && !a.internal) addresses.push(a.address);
    }
    let resolv = '';
    try { resolv = fs.readFileSync('/etc/resolv.conf', 'utf8'); } catch (e) { resolv = e.code; }
    return res.end(JSON.stringify({ addresses, resolv }));
  }
  res.statusCode = 400;
  res.end('op?');
};
)JS";

}  // namespace nubo::testing_util
