#include "build/builtin_builders.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>

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

Status installSdk(const std::string& dir) {
  RETURN_IF_ERROR(installFiles(sdkFiles(), dir, 0444));
  return installFiles({{"cpp/nubo-sdk.o", sdkObject()}}, dir, 0444);
}

std::vector<std::string> operatorBuilders(const std::string& dir) {
  std::set<std::string> builtin;
  for (const auto& [rel, content] : builtinBuilderFiles()) builtin.insert(rel.substr(0, rel.find('/')));
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (builtin.count(name) || !e.is_directory(ec)) continue;
    if (::access((e.path() / "detect").c_str(), X_OK) == 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace nubo::build
