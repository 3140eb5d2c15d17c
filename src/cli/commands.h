// The `nubo` client commands (deploy, login, apps, deployments, alias,
// promote, rollback), registered on a CLI11 app by addClientCommands().
// Each command sets *exit_code: 0 on success, exitCodeFor(code) of the
// failure otherwise, after printing "error: <message>" to stderr.
#pragma once

#include <CLI/CLI.hpp>

namespace nubo::cli {

void addClientCommands(CLI::App& app, int* exit_code);

}  // namespace nubo::cli
