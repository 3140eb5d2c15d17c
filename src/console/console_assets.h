// The web console's files (console/ bundled by esbuild at build time),
// embedded in the binary: the console needs no other server and works
// offline.
#pragma once

#include <string>
#include <string_view>

namespace nubo::console {

struct Asset {
  std::string_view content_type;
  const std::string* bytes;
  const std::string* gzipped;  // the same, gzip-compressed (null: none)
};

// The file at `path` ("index.html", "app.js", "app.css"), or null.
const Asset* asset(std::string_view path);

// Generated (cmake/embed_binary.cmake).
const std::string& indexHtml();
const std::string& appScript();
const std::string& appScriptGz();
const std::string& appStyle();
const std::string& appStyleGz();

}  // namespace nubo::console
