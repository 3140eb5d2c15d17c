// Readiness: the conditions a server meets before it should take traffic
// (/_nubo/readyz on both planes), each named so a probe says which one is
// missing.
//
// A condition is a flag its owner sets (the store opened, the routes
// loaded) or a check asked at report() (the stems warmed). Checks must be
// cheap and must not wait (a probe is answered on a data-plane thread):
// no store reads, no I/O.
//
// Thread-safe.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace nubo {

class Readiness {
 public:
  // A condition, not met until set(name, true).
  void require(std::string name);
  void set(std::string_view name, bool met);
  // A condition asked at each report(); `check` returns "" when met, else
  // what is missing.
  void check(std::string name, std::function<std::string()> check);

  struct Report {
    bool ready = true;
    std::string text;  // a line per condition: "ok <name>" or "waiting <name>: <why>"
  };
  Report report() const;

 private:
  struct Condition {
    std::string name;
    bool met = false;
    std::function<std::string()> check;
  };
  mutable std::mutex mu_;
  std::vector<Condition> conditions_;  // guarded by mu_
};

}  // namespace nubo
