// RFC 3986 percent-encoding: every byte but the unreserved ones
// (A-Z a-z 0-9 - . _ ~) as %XX, in upper-case hex (as SigV4 wants it too).
#pragma once

#include <string>
#include <string_view>

namespace nubo {

// `keep_slash`: '/' stays (a path, not one segment).
std::string percentEncode(std::string_view s, bool keep_slash = false);

}  // namespace nubo
