// Escape attempts shared by the suites that run them against a root and an
// unprivileged `nubo serve`: each deploys its app through `deploy` and
// checks what a user would see.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "integration_util.h"

namespace nubo::testing_util {

using DeployFn = std::function<Json(const std::string& app, const std::map<std::string, std::string>& files)>;

// /dev is read-only and /tmp bounds its inodes as well as its bytes: 1.5 M
// empty files in a 16 MB /tmp once pinned 1.24 GB of kernel memory.
inline void tryFillingDevAndTmp(const NuboServer& server, const DeployFn& deploy) {
  deploy("filler", {{"index.js", R"(const fs = require('fs');
    module.exports = (req, res) => {
      let dev = 'written';
      try { fs.writeFileSync('/dev/planted', 'x'); } catch (e) { dev = e.code; }
      let made = 0, why = 'none';
      for (; made < 200000; made++) {
        try { fs.writeFileSync('/tmp/f' + made, ''); } catch (e) { why = e.code; break; }
      }
      res.end(dev + ' ' + why + ' ' + made);
    })"}});
  std::string got = server.get("/filler/").body;
  std::istringstream in(got);
  std::string dev, why;
  int made = 0;
  in >> dev >> why >> made;
  EXPECT_TRUE(dev == "EROFS" || dev == "EACCES") << got;
  EXPECT_EQ(why, "ENOSPC") << got;
  EXPECT_LE(made, 4096) << got;
}

// 600 processes asked for (a copy of sleep deployed with the app: the root
// has no other programs than node); the pids limit holds and the server
// goes on.
inline void tryForkBomb(const NuboServer& server, const std::string& app_dir, const DeployFn& deploy) {
  std::filesystem::create_directories(app_dir);
  std::filesystem::copy_file("/bin/sleep", app_dir + "/sleep", std::filesystem::copy_options::overwrite_existing);
  ::chmod((app_dir + "/sleep").c_str(), 0755);
  deploy("bomb", {{"index.js", R"(import { spawn } from 'node:child_process';
    export default { async fetch() {
      let started = 0, failed = 0;
      const kids = [];
      for (let i = 0; i < 600; i++) {
        try {
          const k = spawn('/app/sleep', ['30'], { stdio: 'ignore' });
          await new Promise((resolve) => { k.once('spawn', () => { started++; resolve(); }); k.once('error', () => { failed++; resolve(); }); });
          kids.push(k);
        } catch (e) { failed++; }
      }
      for (const k of kids) k.kill('SIGKILL');
      return Response.json({ started, failed });
    } })"}, {"nubo.json", R"({"limits": {"timeout_ms": 60000}})"}});
  auto r = server.get("/bomb/");
  if (r.status == 200) {
    auto j = parseJson(r.body, "bomb");
    ASSERT_TRUE(j.ok()) << r.body;
    EXPECT_GT((*j)["started"].get<int>(), 10) << r.body;   // processes did start...
    EXPECT_LT((*j)["started"].get<int>(), 300) << r.body;  // ...until the pids limit held
    EXPECT_GT((*j)["failed"].get<int>(), 0) << r.body;
  } else {
    EXPECT_GE(r.status, 500);  // or the instance died trying: still contained
  }
  EXPECT_EQ(server.get("/_nubo/healthz").status, 200);
}

}  // namespace nubo::testing_util
