#include "cli/hash_cache.h"

#include <charconv>

#include "common/fs.h"
#include "common/sha256.h"

namespace nubo::cli {
namespace {
constexpr std::string_view kHeader = "nubo-hashcache 1\n";
}

HashCache HashCache::load(const std::string& path) {
  HashCache c;
  auto text = readFile(path, 512ull << 20);
  if (!text.ok() || text->substr(0, kHeader.size()) != kHeader) return c;
  std::string_view rest = std::string_view(*text).substr(kHeader.size());
  // Lines: <hash> <size> <mtime_ns> <ino> <path>
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) break;
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    Entry e;
    std::string_view fields[4];
    bool ok = true;
    for (auto& f : fields) {
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos) {
        ok = false;
        break;
      }
      f = line.substr(0, sp);
      line.remove_prefix(sp + 1);
    }
    if (!ok || line.empty() || !isSha256Hex(fields[0])) continue;
    auto num = [](std::string_view s, auto& out) {
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && p == s.data() + s.size();
    };
    if (!num(fields[1], e.key.size) || !num(fields[2], e.key.mtime_ns) || !num(fields[3], e.key.ino)) continue;
    e.hash = std::string(fields[0]);
    c.old_[std::string(line)] = std::move(e);
  }
  return c;
}

std::optional<std::string> HashCache::lookup(const std::string& rel, const FileKey& key) const {
  auto it = old_.find(rel);
  if (it == old_.end() || !(it->second.key == key)) return std::nullopt;
  return it->second.hash;
}

void HashCache::record(const std::string& rel, const FileKey& key, const std::string& hash, int64_t scan_start_ns) {
  if (key.mtime_ns >= scan_start_ns - 1'000'000'000) return;  // too fresh to trust
  next_[rel] = Entry{key, hash};
}

Status HashCache::save(const std::string& path) const {
  std::string out(kHeader);
  out.reserve(next_.size() * 120);
  for (const auto& [rel, e] : next_) {
    out += e.hash;
    out += ' ';
    out += std::to_string(e.key.size);
    out += ' ';
    out += std::to_string(e.key.mtime_ns);
    out += ' ';
    out += std::to_string(e.key.ino);
    out += ' ';
    out += rel;
    out += '\n';
  }
  RETURN_IF_ERROR(makeDirs(dirName(path)));
  return writeFileAtomic(path, out, 0644);
}

}  // namespace nubo::cli
