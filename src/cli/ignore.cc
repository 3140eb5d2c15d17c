#include "cli/ignore.h"

namespace nubo::cli {
namespace {

// Matches one bracket expression at p[0] == '['; sets *consumed to its length.
bool matchClass(std::string_view p, char c, size_t* consumed, bool* valid) {
  size_t i = 1;
  bool negate = false;
  if (i < p.size() && (p[i] == '!' || p[i] == '^')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < p.size() && (p[i] != ']' || first)) {
    first = false;
    char lo = p[i];
    if (lo == '\\' && i + 1 < p.size()) lo = p[++i];
    char hi = lo;
    if (i + 2 < p.size() && p[i + 1] == '-' && p[i + 2] != ']') {
      hi = p[i + 2];
      i += 2;
    }
    if (c >= lo && c <= hi) matched = true;
    ++i;
  }
  if (i >= p.size()) {  // no closing ']': treat '[' literally
    *valid = false;
    return false;
  }
  *valid = true;
  *consumed = i + 1;
  return matched != negate;
}

bool match(std::string_view p, std::string_view t) {
  while (!p.empty()) {
    if (p.substr(0, 2) == "**") {
      std::string_view rest = p.substr(2);
      if (rest.empty()) return true;  // "/**" or bare "**": everything
      if (rest[0] == '/') {
        // "**/": zero or more whole directories.
        rest.remove_prefix(1);
        for (size_t i = 0;; ) {
          if (match(rest, t.substr(i))) return true;
          size_t slash = t.find('/', i);
          if (slash == std::string_view::npos) return false;
          i = slash + 1;
        }
      }
      p = p.substr(1);  // "**x": like "*"
      continue;
    }
    char pc = p[0];
    if (pc == '*') {
      std::string_view rest = p.substr(1);
      for (size_t i = 0; i <= t.size(); ++i) {
        if (match(rest, t.substr(i))) return true;
        if (i < t.size() && t[i] == '/') return false;
      }
      return false;
    }
    if (t.empty()) return false;
    if (pc == '?') {
      if (t[0] == '/') return false;
      p.remove_prefix(1);
      t.remove_prefix(1);
      continue;
    }
    if (pc == '[') {
      size_t consumed = 0;
      bool valid = false;
      bool m = matchClass(p, t[0], &consumed, &valid);
      if (valid) {
        if (!m || t[0] == '/') return false;
        p.remove_prefix(consumed);
        t.remove_prefix(1);
        continue;
      }
    }
    if (pc == '\\' && p.size() > 1) {
      p.remove_prefix(1);
      pc = p[0];
    }
    if (pc != t[0]) return false;
    p.remove_prefix(1);
    t.remove_prefix(1);
  }
  return t.empty();
}

}  // namespace

bool globMatch(std::string_view pattern, std::string_view text) { return match(pattern, text); }

IgnoreRules IgnoreRules::parse(std::string_view text) {
  IgnoreRules r;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string line(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // Trailing spaces are dropped unless escaped.
    while (!line.empty() && line.back() == ' ' && !(line.size() > 1 && line[line.size() - 2] == '\\')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    Rule rule;
    if (line[0] == '!') {
      rule.negate = true;
      line.erase(0, 1);
    } else if (line[0] == '\\' && line.size() > 1 && (line[1] == '#' || line[1] == '!')) {
      line.erase(0, 1);
    }
    if (!line.empty() && line.back() == '/') {
      rule.dir_only = true;
      line.pop_back();
    }
    if (line.empty()) continue;
    if (line.find('/') != std::string::npos) rule.anchored = true;
    if (line[0] == '/') line.erase(0, 1);
    rule.pattern = std::move(line);
    r.rules_.push_back(std::move(rule));
  }
  return r;
}

bool IgnoreRules::ignored(std::string_view path, bool is_dir) const {
  std::string_view base = path.substr(path.rfind('/') == std::string_view::npos ? 0 : path.rfind('/') + 1);
  if (base == ".git" || base == ".nubo") return true;
  bool result = false;
  for (const auto& rule : rules_) {
    if (rule.dir_only && !is_dir) continue;
    bool m = rule.anchored ? globMatch(rule.pattern, path) : globMatch(rule.pattern, base);
    if (m) result = !rule.negate;
  }
  return result;
}

}  // namespace nubo::cli
