// The CLI's configuration file: $XDG_CONFIG_HOME/nubo/config.json (default
// ~/.config/nubo/config.json), mode 0600, {"server": URL, "token": T}.
// Written by `nubo login`, and by `nubo serve` on first start when absent.
// NUBO_SERVER and NUBO_TOKEN override it.
#pragma once

#include <string>

#include "common/status.h"

namespace nubo {

struct ClientConfig {
  std::string server;  // control-plane URL, e.g. http://127.0.0.1:7070
  std::string token;
};

std::string clientConfigPath();

// kNotFound when the file does not exist; kInvalidArgument naming the file
// when it is malformed.
Result<ClientConfig> loadClientConfig(const std::string& path);
Status saveClientConfig(const std::string& path, const ClientConfig& c);

}  // namespace nubo
