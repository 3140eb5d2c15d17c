// Fuzzes the manifest validator with nubo.json as a user (or an attacker)
// writes it: parsing and validating never crash, and a manifest that
// validates validates again from what nubo stores of it.
#include <cstdint>
#include <string_view>

#include "manifest/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto m = nubo::manifest::parseManifestText(in);
  if (!m.ok()) return 0;
  auto stored = nubo::manifest::toJson(*m);
  if (!nubo::manifest::parseManifest(stored).ok()) __builtin_trap();
  return 0;
}
