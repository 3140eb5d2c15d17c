#include "common/json.h"

#include <algorithm>

namespace nubo {
namespace {

// The deepest nesting of arrays and objects in `text` (brackets inside
// strings do not count). Malformed text is left to the parser.
int nestingDepth(std::string_view text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') deepest = std::max(deepest, ++depth);
    else if (c == ']' || c == '}') --depth;
  }
  return deepest;
}

}  // namespace

Result<Json> parseJson(std::string_view text, std::string_view what) {
  if (int depth = nestingDepth(text); depth > kMaxJsonDepth) {
    return InvalidArgument(std::string(what) + " is nested " + std::to_string(depth) + " levels deep; at most " +
                           std::to_string(kMaxJsonDepth) + " are allowed");
  }
  Json j = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again with exceptions only to get the parser's position message.
    try {
      Json ignored = Json::parse(text.begin(), text.end());
      (void)ignored;
    } catch (const Json::exception& e) {
      return InvalidArgument(std::string(what) + " is not valid JSON: " + e.what());
    }
    return InvalidArgument(std::string(what) + " is not valid JSON");
  }
  return j;
}

std::string dumpJson(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace nubo
