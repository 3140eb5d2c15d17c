#include "build/builtin_builders.h"

#include "common/fs.h"

namespace nubo::build {

namespace {
Status installFiles(const std::vector<std::pair<std::string, std::string>>& files, const std::string& dir,
                    mode_t mode) {
  for (const auto& [rel, content] : files) {
    std::string path = dir + "/" + rel;
    RETURN_IF_ERROR(makeDirs(path.substr(0, path.rfind('/'))));
    auto current = readFile(path);
    if (current.ok() && *current == content) continue;
    RETURN_IF_ERROR(writeFileAtomic(path, content, mode));
  }
  return Status::Ok();
}
}  // namespace

Status installBuiltinBuilders(const std::string& dir) { return installFiles(builtinBuilderFiles(), dir, 0555); }

Status installSdk(const std::string& dir) { return installFiles(sdkFiles(), dir, 0444); }

}  // namespace nubo::build
