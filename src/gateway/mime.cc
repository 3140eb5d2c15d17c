#include "gateway/mime.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <string>

namespace nubo::gateway {
namespace {

struct Mapping {
  std::string_view ext;
  std::string_view type;
};

// Sorted by extension for binary search.
constexpr std::array kTypes = {
    Mapping{"7z", "application/x-7z-compressed"},
    Mapping{"avif", "image/avif"},
    Mapping{"bmp", "image/bmp"},
    Mapping{"cjs", "text/javascript; charset=utf-8"},
    Mapping{"css", "text/css; charset=utf-8"},
    Mapping{"csv", "text/csv; charset=utf-8"},
    Mapping{"gif", "image/gif"},
    Mapping{"gz", "application/gzip"},
    Mapping{"htm", "text/html; charset=utf-8"},
    Mapping{"html", "text/html; charset=utf-8"},
    Mapping{"ico", "image/x-icon"},
    Mapping{"jpeg", "image/jpeg"},
    Mapping{"jpg", "image/jpeg"},
    Mapping{"js", "text/javascript; charset=utf-8"},
    Mapping{"json", "application/json"},
    Mapping{"map", "application/json"},
    Mapping{"md", "text/markdown; charset=utf-8"},
    Mapping{"mjs", "text/javascript; charset=utf-8"},
    Mapping{"mp3", "audio/mpeg"},
    Mapping{"mp4", "video/mp4"},
    Mapping{"oga", "audio/ogg"},
    Mapping{"ogg", "audio/ogg"},
    Mapping{"ogv", "video/ogg"},
    Mapping{"otf", "font/otf"},
    Mapping{"pdf", "application/pdf"},
    Mapping{"png", "image/png"},
    Mapping{"svg", "image/svg+xml"},
    Mapping{"tar", "application/x-tar"},
    Mapping{"ttf", "font/ttf"},
    Mapping{"txt", "text/plain; charset=utf-8"},
    Mapping{"wasm", "application/wasm"},
    Mapping{"wav", "audio/wav"},
    Mapping{"webm", "video/webm"},
    Mapping{"webmanifest", "application/manifest+json"},
    Mapping{"webp", "image/webp"},
    Mapping{"woff", "font/woff"},
    Mapping{"woff2", "font/woff2"},
    Mapping{"xml", "application/xml"},
    Mapping{"zip", "application/zip"},
};

}  // namespace

std::string_view contentTypeFor(std::string_view path) {
  auto slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  auto dot = base.rfind('.');
  if (dot == std::string_view::npos || dot + 1 == base.size() || base.size() - dot > 13) {
    return "application/octet-stream";
  }
  std::string ext(base.substr(dot + 1));
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = std::lower_bound(kTypes.begin(), kTypes.end(), ext,
                             [](const Mapping& m, const std::string& e) { return m.ext < e; });
  if (it != kTypes.end() && it->ext == ext) return it->type;
  return "application/octet-stream";
}

}  // namespace nubo::gateway
