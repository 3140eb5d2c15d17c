// JSON at component edges (control API, CLI, manifests) via nlohmann-json.
// nlohmann throws on malformed input; these wrappers turn that into Status,
// so no exception crosses a component boundary.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo {

using Json = nlohmann::json;

// Deeper nesting is refused before parsing: copying, comparing or dumping a
// value recurses once per level, so a crafted 70,000-deep array would
// overflow the stack.
constexpr int kMaxJsonDepth = 64;

// kInvalidArgument "<what> is not valid JSON: <parser message>", or naming
// the depth limit.
Result<Json> parseJson(std::string_view text, std::string_view what);

// Compact serialization that never throws: invalid UTF-8 is replaced.
std::string dumpJson(const Json& j);

}  // namespace nubo
