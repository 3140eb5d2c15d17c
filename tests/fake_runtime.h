// A fake instance runtime for unit tests: a few lines of Python speaking the
// instance protocol (docs/protocol.md) on NUBO_FD, so that Instance, Pool
// and Stems run against a real process without Node.
#pragma once

#include <string>

#include "runtime/launcher.h"

namespace nubo::testing_util {

// The Python prelude: send(type, payload) and read_exactly(n) on the
// channel (exiting when it ends), and HELLO already sent.
inline std::string fakeRuntime(const std::string& body) {
  return R"(
import os, struct
fd = int(os.environ["NUBO_FD"])
def send(t, payload):
    os.write(fd, struct.pack(">IBBI", len(payload), t, 0, 0) + payload)
def read_exactly(n):
    b = b""
    while len(b) < n:
        chunk = os.read(fd, n - len(b))
        if not chunk:
            os._exit(0)
        b += chunk
    return b
send(1, b'{"runtime":"fake","pid":%d}' % os.getpid())
)" + body;
}

// Answers every SPECIALIZE with READY, until the channel ends.
inline std::string readyForEverySpecialize() {
  return fakeRuntime(R"(
while True:
    head = read_exactly(10)
    n, t = struct.unpack(">IB", head[:5])
    read_exactly(n)
    if t == 2:
        send(3, b'{"ok":true,"load_ms":0}')
)");
}

inline runtime::LaunchSpec fakeLaunch(const std::string& program) {
  runtime::LaunchSpec spec;
  spec.argv = {"/usr/bin/python3", "-c", program};
  spec.env = {"PATH=/usr/bin:/bin", "NUBO_FD=3"};
  return spec;
}

}  // namespace nubo::testing_util
