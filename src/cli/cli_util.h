// What the client commands share: the client configuration, running a
// command against the API with failures turned into exit codes, and
// printing tables, JSON and times.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cli/http_client.h"
#include "common/client_config.h"
#include "common/json.h"
#include "common/status.h"

namespace nubo::cli {

// Prints "error: <message>" to stderr; the exit code for its code.
int fail(const Status& s);
// The config file, then NUBO_SERVER / NUBO_TOKEN on top; kUnauthenticated
// saying how to log in when there is no token.
Result<ClientConfig> clientConfig();
// Runs `fn` with a connected client, turning failures into exit codes.
int withClient(const std::function<Status(HttpClient&)>& fn);

int64_t nowNs();
// "12s ago", "3h ago", ...
std::string age(int64_t ms);
// "2026-12-06 14:03 UTC"
std::string utcTime(int64_t ms);
// Left-aligned columns.
void printTable(const std::vector<std::vector<std::string>>& rows);
void printJson(const Json& j);
// A field as text: strings as they are, "-" when absent or null.
std::string str(const Json& j, const char* key);

}  // namespace nubo::cli
