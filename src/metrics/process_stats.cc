#include "metrics/process_stats.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace nubo::metrics {

namespace {

// Seconds since the epoch at which the machine booted (from /proc/stat).
double bootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && (in >> value)) return value;
    in.ignore(1 << 16, '\n');
  }
  return 0;
}

}  // namespace

void collectProcess(Exposition& out) {
  const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
  // /proc/self/stat: the fields after the command's closing parenthesis
  // (which may itself contain spaces and parentheses).
  std::ifstream stat_file("/proc/self/stat");
  std::string stat((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
  double utime = 0, stime = 0, start = 0, vsize = 0, rss = 0;
  if (auto close = stat.rfind(')'); close != std::string::npos) {
    std::istringstream fields(stat.substr(close + 2));
    std::string f;
    // Field 3 is the state; utime is 14, stime 15, starttime 22, vsize 23, rss 24.
    for (int i = 3; i <= 24 && (fields >> f); ++i) {
      if (i == 14) utime = std::stod(f);
      if (i == 15) stime = std::stod(f);
      if (i == 22) start = std::stod(f);
      if (i == 23) vsize = std::stod(f);
      if (i == 24) rss = std::stod(f);
    }
  }
  int fds = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') ++fds;
    }
    ::closedir(d);
    --fds;  // the directory's own
  }
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);

  out.family("process_cpu_seconds_total", "counter", "User and system CPU time the server has used.");
  out.sample("process_cpu_seconds_total", {}, (utime + stime) / ticks);
  out.family("process_resident_memory_bytes", "gauge", "The server's resident memory.");
  out.sample("process_resident_memory_bytes", {}, rss * page);
  out.family("process_virtual_memory_bytes", "gauge", "The server's virtual memory.");
  out.sample("process_virtual_memory_bytes", {}, vsize);
  out.family("process_open_fds", "gauge", "File descriptors the server holds open.");
  out.sample("process_open_fds", {}, fds);
  out.family("process_max_fds", "gauge", "The server's limit on open file descriptors.");
  out.sample("process_max_fds", {}, static_cast<double>(lim.rlim_cur));
  out.family("process_start_time_seconds", "gauge", "When the server started, in seconds since the epoch.");
  out.sample("process_start_time_seconds", {}, bootTime() + start / ticks);
}

}  // namespace nubo::metrics
