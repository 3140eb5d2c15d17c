#include "common/runtime_kind.h"

namespace nubo {

namespace {

constexpr RuntimeTraits kRuntimes[] = {
    {RuntimeKind::kStatic, "static", Launch::kNone, EntryKind::kNone, false, false, false},
    {RuntimeKind::kNode, "node", Launch::kNodeStem, EntryKind::kModule, false, true, false},
    {RuntimeKind::kNative, "native", Launch::kOwnProgram, EntryKind::kProgram, false, false, true},
    {RuntimeKind::kExec, "exec", Launch::kExecProxy, EntryKind::kCommand, true, true, false},
};

bool endsWith(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

const RuntimeTraits& runtimeTraits(RuntimeKind kind) {
  for (const auto& t : kRuntimes) {
    if (t.kind == kind) return t;
  }
  return kRuntimes[0];
}

std::optional<RuntimeKind> runtimeFromName(std::string_view name) {
  for (const auto& t : kRuntimes) {
    if (t.name == name) return t.kind;
  }
  return std::nullopt;
}

std::string runtimeNames() {
  std::string out;
  for (const auto& t : kRuntimes) {
    if (!out.empty()) out += ", ";
    out += t.name;
  }
  return out;
}

bool isTypeScript(std::string_view path) {
  for (std::string_view ext : {".ts", ".tsx", ".mts", ".cts"}) {
    if (endsWith(path, ext)) return true;
  }
  return false;
}

bool isJavaScriptOrTypeScript(std::string_view path) {
  if (path.find_first_of(" \t") != std::string_view::npos) return false;
  for (std::string_view ext : {".js", ".mjs", ".cjs"}) {
    if (endsWith(path, ext)) return true;
  }
  return isTypeScript(path);
}

std::string resolveEntry(RuntimeKind kind, const std::string& entry) {
  switch (runtimeTraits(kind).entry) {
    case EntryKind::kNone: return "";
    case EntryKind::kCommand: return entry;
    case EntryKind::kProgram: return entry.empty() ? "handler" : entry;
    case EntryKind::kModule:
      if (entry.empty()) return "index.js";
      if (!isTypeScript(entry)) return entry;
      return entry.substr(0, entry.rfind('.')) + ".js";
  }
  return entry;
}

}  // namespace nubo
