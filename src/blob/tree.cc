#include "blob/tree.h"

#include <algorithm>
#include <charconv>

#include "common/sha256.h"

namespace nubo::blob {
namespace {

constexpr std::string_view kHeader = "nubo-tree 1\n";

bool parseKind(std::string_view s, EntryKind* out) {
  if (s == "file") *out = EntryKind::kFile;
  else if (s == "exec") *out = EntryKind::kExecutable;
  else if (s == "dir") *out = EntryKind::kDir;
  else return false;
  return true;
}

std::string printable(std::string_view name) {
  std::string out;
  for (unsigned char c : name.substr(0, 100)) {
    if (c < 0x20 || c == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

std::string_view kindName(EntryKind k) {
  switch (k) {
    case EntryKind::kFile: return "file";
    case EntryKind::kExecutable: return "exec";
    case EntryKind::kDir: return "dir";
  }
  return "file";
}

uint64_t Tree::totalBytes() const {
  uint64_t total = 0;
  for (const auto& e : entries) total += e.size;
  return total;
}

Status validateEntryName(std::string_view name, std::string_view path) {
  std::string where = "\"" + printable(path) + "\"";
  if (name.empty()) return InvalidArgument("path " + where + " has an empty name component");
  if (name == "." || name == "..") {
    return InvalidArgument("path " + where + " uses \"" + std::string(name) +
                           "\"; names may not be \".\" or \"..\"");
  }
  if (name.size() > 255) return InvalidArgument("path " + where + ": name is longer than 255 bytes");
  for (unsigned char c : name) {
    if (c == '/') return InvalidArgument("path " + where + ": a name may not contain '/'");
    if (c == 0) return InvalidArgument("path " + where + ": a name may not contain NUL");
    if (c < 0x20 || c == 0x7f) {
      return InvalidArgument("path " + where + ": a name may not contain control characters; rename the file");
    }
  }
  return Status::Ok();
}

Result<std::string> encodeTree(Tree tree) {
  auto& es = tree.entries;
  std::sort(es.begin(), es.end(), [](const TreeEntry& a, const TreeEntry& b) { return a.name < b.name; });
  std::string out(kHeader);
  for (size_t i = 0; i < es.size(); ++i) {
    const auto& e = es[i];
    RETURN_IF_ERROR(validateEntryName(e.name, e.name));
    if (i > 0 && es[i - 1].name == e.name) return InvalidArgument("duplicate entry \"" + printable(e.name) + "\"");
    if (!isSha256Hex(e.hash)) return InvalidArgument("entry \"" + printable(e.name) + "\" has a malformed hash");
    out += kindName(e.kind);
    out += ' ';
    out += e.hash;
    out += ' ';
    out += std::to_string(e.size);
    out += '\t';
    out += e.name;
    out += '\n';
  }
  return out;
}

Result<Tree> decodeTree(std::string_view bytes) {
  if (bytes.substr(0, kHeader.size()) != kHeader) {
    return InvalidArgument("tree object does not start with \"nubo-tree 1\"");
  }
  Tree tree;
  std::string_view rest = bytes.substr(kHeader.size());
  size_t line_no = 1;
  while (!rest.empty()) {
    ++line_no;
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return InvalidArgument("tree object line " + std::to_string(line_no) + " does not end with a newline");
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    auto bad = [&](std::string_view why) {
      return InvalidArgument("tree object line " + std::to_string(line_no) + ": " + std::string(why));
    };
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos) return bad("expected \"<kind> <hash> <size>\\t<name>\"");
    TreeEntry e;
    if (!parseKind(line.substr(0, sp1), &e.kind)) return bad("kind must be file, exec or dir");
    line.remove_prefix(sp1 + 1);
    if (line.size() < 65 || line[64] != ' ') return bad("malformed hash");
    e.hash = std::string(line.substr(0, 64));
    if (!isSha256Hex(e.hash)) return bad("malformed hash");
    line.remove_prefix(65);
    size_t tab = line.find('\t');
    if (tab == std::string_view::npos || tab == 0) return bad("missing size or name");
    std::string_view size_s = line.substr(0, tab);
    auto [p, ec] = std::from_chars(size_s.data(), size_s.data() + size_s.size(), e.size);
    if (ec != std::errc() || p != size_s.data() + size_s.size() || (size_s.size() > 1 && size_s[0] == '0')) {
      return bad("malformed size");
    }
    e.name = std::string(line.substr(tab + 1));
    RETURN_IF_ERROR(validateEntryName(e.name, e.name));
    if (!tree.entries.empty() && !(tree.entries.back().name < e.name)) {
      return bad("entries are not sorted by name or repeat a name");
    }
    tree.entries.push_back(std::move(e));
  }
  return tree;
}

Status checkChildren(BlobStore& blobs, const Tree& tree) {
  std::vector<std::string> missing;
  for (const auto& e : tree.entries) {
    if (e.isDir()) {
      auto child = blobs.get(e.hash);
      if (!child.ok()) {
        if (child.status().code() != Code::kNotFound) return child.status();
        missing.push_back(e.hash);
        continue;
      }
      auto decoded = decodeTree(*child);
      if (!decoded.ok()) {
        return InvalidArgument("entry \"" + printable(e.name) + "\" names " + e.hash + ", which is not a tree object");
      }
      if (decoded->totalBytes() != e.size) {
        return InvalidArgument("entry \"" + printable(e.name) + "\" lists " + std::to_string(e.size) +
                               " bytes but its tree holds " + std::to_string(decoded->totalBytes()));
      }
    } else {
      auto size = blobs.size(e.hash);
      if (!size.ok()) {
        if (size.status().code() != Code::kNotFound) return size.status();
        missing.push_back(e.hash);
        continue;
      }
      if (*size != e.size) {
        return InvalidArgument("entry \"" + printable(e.name) + "\" lists " + std::to_string(e.size) +
                               " bytes but blob " + e.hash + " has " + std::to_string(*size));
      }
    }
  }
  if (!missing.empty()) {
    std::string msg = std::to_string(missing.size()) + " child object(s) are not uploaded yet (upload them first): ";
    for (size_t i = 0; i < missing.size() && i < 5; ++i) msg += (i ? ", " : "") + missing[i];
    return FailedPrecondition(msg);
  }
  return Status::Ok();
}

Status walkTree(const std::string& root, const TreeLoader& load,
                const std::function<void(FlatFile&&)>& visit) {
  struct Pending {
    std::string hash;
    std::string prefix;
    int depth;
  };
  std::vector<Pending> stack{{root, "", 0}};
  while (!stack.empty()) {
    Pending cur = std::move(stack.back());
    stack.pop_back();
    if (cur.depth > 256) return InvalidArgument("tree is nested deeper than 256 directories");
    ASSIGN_OR_RETURN(Tree t, load(cur.hash));
    for (auto& e : t.entries) {
      std::string path = cur.prefix.empty() ? e.name : cur.prefix + "/" + e.name;
      if (e.isDir()) {
        stack.push_back({std::move(e.hash), std::move(path), cur.depth + 1});
      } else {
        visit(FlatFile{std::move(path), e.kind, e.size, std::move(e.hash)});
      }
    }
  }
  return Status::Ok();
}

TreeLoader loaderFor(BlobStore& blobs) {
  return [&blobs](const std::string& hash) -> Result<Tree> {
    ASSIGN_OR_RETURN(std::string bytes, blobs.get(hash));
    return decodeTree(bytes);
  };
}

Result<std::optional<TreeEntry>> lookupPath(BlobStore& blobs, const std::string& root, std::string_view path) {
  std::string tree_hash = root;
  while (true) {
    size_t slash = path.find('/');
    std::string_view name = path.substr(0, slash);
    auto bytes = blobs.get(tree_hash);
    if (!bytes.ok()) {
      if (bytes.status().code() == Code::kNotFound) {
        return FailedPrecondition("tree " + tree_hash + " is not uploaded; upload it (and its files) first");
      }
      return bytes.status();
    }
    ASSIGN_OR_RETURN(Tree tree, decodeTree(*bytes));
    auto found = std::find_if(tree.entries.begin(), tree.entries.end(), [&](const auto& e) { return e.name == name; });
    if (found == tree.entries.end()) return std::optional<TreeEntry>();
    if (slash == std::string_view::npos || slash + 1 == path.size()) return std::optional<TreeEntry>(*found);
    if (!found->isDir()) return std::optional<TreeEntry>();
    tree_hash = found->hash;
    path.remove_prefix(slash + 1);
  }
}

}  // namespace nubo::blob
