// Content types by file extension for the static runtime.
#pragma once

#include <string_view>

namespace nubo::gateway {

// "text/html; charset=utf-8" for "a/index.html"; "application/octet-stream"
// when the extension is unknown. Case-insensitive.
std::string_view contentTypeFor(std::string_view path);

}  // namespace nubo::gateway
