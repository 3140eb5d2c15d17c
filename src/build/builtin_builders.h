// The builders that come with nubo (builders/<name>/ in the source tree),
// embedded in the binary and written to disk at start-up.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace nubo::build {

// "name/file" -> content, for every file of every built-in builder.
const std::vector<std::pair<std::string, std::string>>& builtinBuilderFiles();
// "cpp/nubo.h"... : the SDK for native functions (sdk/ in the source tree).
const std::vector<std::pair<std::string, std::string>>& sdkFiles();
// cpp/nubo-sdk.o: the SDK compiled with nubo, which native builds link.
const std::string& sdkObject();

// Writes the built-in builders into `dir` (one folder each, executables
// mode 0555), replacing changed ones; other folders there (builders an
// operator added) are left as they are.
Status installBuiltinBuilders(const std::string& dir);
// The builders in `dir` an operator added (not built in) that have a
// `detect`, sorted by name.
std::vector<std::string> operatorBuilders(const std::string& dir);

// Writes the SDKs and the SDK object into `dir` (read-only files),
// replacing changed ones.
Status installSdk(const std::string& dir);

}  // namespace nubo::build
