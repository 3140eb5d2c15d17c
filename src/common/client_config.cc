#include "common/client_config.h"

#include <cstdlib>

#include "common/fs.h"
#include "common/json.h"

namespace nubo {

std::string clientConfigPath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  std::string base = (xdg && *xdg) ? std::string(xdg) : homeDir() + "/.config";
  return base + "/nubo/config.json";
}

Result<ClientConfig> loadClientConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, readFile(path, 1 << 20));
  ASSIGN_OR_RETURN(Json j, parseJson(text, path));
  ClientConfig c;
  if (!j.is_object()) return InvalidArgument(path + " must hold a JSON object with \"server\" and \"token\"");
  if (j.contains("server") && j["server"].is_string()) c.server = j["server"].get<std::string>();
  if (j.contains("token") && j["token"].is_string()) c.token = j["token"].get<std::string>();
  return c;
}

Status saveClientConfig(const std::string& path, const ClientConfig& c) {
  RETURN_IF_ERROR(makeDirs(dirName(path), 0700));
  Json j = {{"server", c.server}, {"token", c.token}};
  return writeFileAtomic(path, j.dump(2) + "\n", 0600);
}

}  // namespace nubo
