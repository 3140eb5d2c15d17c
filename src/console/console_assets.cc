#include "console/console_assets.h"

#include <array>

namespace nubo::console {

const Asset* asset(std::string_view path) {
  static const std::array<std::pair<std::string_view, Asset>, 3> assets = {{
      {"index.html", {"text/html; charset=utf-8", &indexHtml(), nullptr}},
      {"app.js", {"text/javascript; charset=utf-8", &appScript(), &appScriptGz()}},
      {"app.css", {"text/css; charset=utf-8", &appStyle(), &appStyleGz()}},
  }};
  for (const auto& [name, a] : assets) {
    if (name == path) return &a;
  }
  return nullptr;
}

}  // namespace nubo::console
