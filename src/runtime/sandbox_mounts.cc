#include "runtime/sandbox_mounts.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <sstream>
#include <vector>

namespace nubo::runtime::sandbox_mounts {

bool writeFileSimple(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

bool bindReadOnly(const std::string& src, const std::string& dst, bool is_dir) {
  if (is_dir) ::mkdir(dst.c_str(), 0755);
  else writeFileSimple(dst, "");
  if (::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0) return false;
  return ::mount(nullptr, dst.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) == 0;
}

bool bindDevice(const std::string& src, const std::string& dst) {
  writeFileSimple(dst, "");
  return ::mount(src.c_str(), dst.c_str(), nullptr, MS_BIND, nullptr) == 0;
}

// "/a/./b/../c" -> "/a/c" (lexically; the host path is resolved one
// component at a time by mirrorPath).
std::string normalizePath(const std::string& path) {
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

bool mirrorPath(const std::string& root, const std::string& path, std::set<std::string>& bound, int depth) {
  if (depth > 16) return false;  // a symlink loop
  std::string norm = normalizePath(path);
  for (const auto& b : bound) {
    if (norm == b || norm.rfind(b + "/", 0) == 0) return true;
  }
  std::string cur;
  size_t pos = 1;
  for (;;) {
    size_t next = norm.find('/', pos);
    bool last = next == std::string::npos;
    std::string host = cur + "/" + norm.substr(pos, last ? std::string::npos : next - pos);
    struct stat st {};
    if (::lstat(host.c_str(), &st) != 0) return false;
    if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlink(host.c_str(), target, sizeof target - 1);
      if (n <= 0) return false;
      target[n] = 0;
      if (::symlink(target, (root + host).c_str()) != 0 && errno != EEXIST) return false;
      std::string resolved = target[0] == '/' ? std::string(target) : cur + "/" + target;
      return mirrorPath(root, resolved + (last ? "" : norm.substr(next)), bound, depth + 1);
    }
    if (last) {
      bound.insert(host);
      return bindReadOnly(host, root + host, S_ISDIR(st.st_mode));
    }
    if (::mkdir((root + host).c_str(), 0755) != 0 && errno != EEXIST) return false;
    cur = host;
    pos = next + 1;
  }
}

}  // namespace nubo::runtime::sandbox_mounts
