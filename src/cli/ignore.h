// IgnoreRules: which paths `nubo deploy` leaves out, from the project's
// .nuboignore (gitignore syntax). `.git` and `.nubo` are always left out.
//
// Supported, as in gitignore: blank lines and "#" comments; "!" re-includes;
// a trailing "/" matches directories only; a pattern with a "/" at the start
// or in the middle is anchored at the project root, otherwise it matches the
// name at any depth; "*", "?", "[a-z]"/"[!a-z]"; "**/" (any directories),
// "/**" (everything inside), "/**/" (zero or more directories). The last
// matching rule wins; a file inside an ignored directory stays ignored.
// Only the .nuboignore at the project root is read.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace nubo::cli {

class IgnoreRules {
 public:
  static IgnoreRules parse(std::string_view text);

  // `path` is relative to the root, '/'-separated, no leading '/'.
  bool ignored(std::string_view path, bool is_dir) const;

 private:
  struct Rule {
    std::string pattern;
    bool negate = false;
    bool dir_only = false;
    bool anchored = false;
  };
  std::vector<Rule> rules_;
};

// Glob match of `text` against `pattern` (the syntax above); exposed for tests.
bool globMatch(std::string_view pattern, std::string_view text);

}  // namespace nubo::cli
