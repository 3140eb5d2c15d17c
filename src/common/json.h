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

// kInvalidArgument "<what> is not valid JSON: <parser message>".
Result<Json> parseJson(std::string_view text, std::string_view what);

// Compact serialization that never throws: invalid UTF-8 is replaced.
std::string dumpJson(const Json& j);

}  // namespace nubo
