// The client commands for running nubo as a team: whoami, tokens (create,
// ls, revoke) and audit; registered on a CLI11 app like addClientCommands().
#pragma once

#include <CLI/CLI.hpp>

#include "common/status.h"

namespace nubo::cli {

void addTeamCommands(CLI::App& app, int* exit_code);

// "90m", "12h", "30d", "2w" -> seconds; kInvalidArgument naming the problem.
Result<int64_t> parseDuration(std::string_view s);
// A time given on the command line, in ms since the epoch: a duration back
// from `now_ms` ("90m", "1h", "2d") or a UTC time ("2026-12-06T10:00:00Z",
// "2026-12-06 10:00", seconds and the Z optional).
Result<int64_t> parseTimeArg(std::string_view s, int64_t now_ms, std::string_view flag);

}  // namespace nubo::cli
