// The client commands for running nubo as a team: whoami, tokens (create,
// ls, revoke) and audit; registered on a CLI11 app like addClientCommands().
#pragma once

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace nubo::cli {

void addTeamCommands(CLI::App& app, int* exit_code);

// "90m", "12h", "30d", "2w" -> seconds; kInvalidArgument naming the problem.
Result<int64_t> parseDuration(std::string_view s);

}  // namespace nubo::cli
