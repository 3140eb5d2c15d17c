#include "build/builtin_builders.h"

#include "common/fs.h"

namespace nubo::build {

Status installBuiltinBuilders(const std::string& dir) {
  for (const auto& [rel, content] : builtinBuilderFiles()) {
    std::string path = dir + "/" + rel;
    RETURN_IF_ERROR(makeDirs(path.substr(0, path.rfind('/'))));
    auto current = readFile(path);
    if (current.ok() && *current == content) continue;
    RETURN_IF_ERROR(writeFileAtomic(path, content, 0555));
  }
  return Status::Ok();
}

}  // namespace nubo::build
