// The runtime registry: every runtime a deployment can have, and in one
// table what each needs (how its instances start, whether stems serve it,
// how its entry is found, what a build does for it). Code asks the table,
// never compares runtime names.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace nubo {

enum class RuntimeKind : uint8_t { kStatic, kNode, kNative, kExec };

// How a runtime's instances start.
enum class Launch : uint8_t {
  kNone,        // no instances: the gateway serves the files
  kNodeStem,    // a generic node stem, specialized to the deployment (SPECIALIZE)
  kOwnProgram,  // the deployment's own program, which speaks the instance protocol itself
  kExecProxy,   // nubo's exec proxy (`nubo __exec-proxy`), which starts the deployment's server and proxies to it
};

// What the manifest's `entry` names.
enum class EntryKind : uint8_t {
  kNone,     // nothing runs
  kModule,   // a JavaScript module (TypeScript runs as the .js built beside it); default index.js
  kProgram,  // a program in the build output; default "handler"
  kCommand,  // the command line of an HTTP server on $PORT; required
};

struct RuntimeTraits {
  RuntimeKind kind;
  std::string_view name;  // as in nubo.json
  Launch launch;
  EntryKind entry;
  // Sees the host's programs (/usr) read-only and has a loopback network of
  // its own, so interpreters and servers of any language run.
  bool host_toolchain;
  // A package.json's dependencies are installed by a build (node builder).
  bool node_dependencies;
  // Always built (from sources the builder compiles), whatever else is set.
  bool always_built;

  bool runsCode() const { return launch != Launch::kNone; }
  bool usesStems() const { return launch == Launch::kNodeStem; }
  // Its instance is a process of its own, started with the deployment's
  // files in place (no stem to specialize).
  bool ownProcess() const { return launch == Launch::kOwnProgram || launch == Launch::kExecProxy; }
};

const RuntimeTraits& runtimeTraits(RuntimeKind kind);
inline std::string_view runtimeName(RuntimeKind kind) { return runtimeTraits(kind).name; }
// nullopt for a name no runtime has.
std::optional<RuntimeKind> runtimeFromName(std::string_view name);
// "static, node, native, exec", for errors.
std::string runtimeNames();

// The one place an entry is resolved: what an instance of `kind` runs for
// the manifest's `entry` (empty: the runtime's default).
std::string resolveEntry(RuntimeKind kind, const std::string& entry);

// A TypeScript source (.ts, .tsx, .mts, .cts).
bool isTypeScript(std::string_view path);
// A .js, .mjs, .cjs or TypeScript file name (no spaces: not a command line).
bool isJavaScriptOrTypeScript(std::string_view path);

}  // namespace nubo
