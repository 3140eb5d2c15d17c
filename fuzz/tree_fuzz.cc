// Fuzzes tree decoding, as the control API meets tree objects a client
// uploads: decoding never crashes, and what decodes is canonical (encoding
// it again gives the same bytes, so a tree has exactly one name).
#include <cstdint>
#include <string_view>

#include "blob/tree.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto tree = nubo::blob::decodeTree(in);
  if (!tree.ok()) return 0;
  auto again = nubo::blob::encodeTree(*tree);
  if (!again.ok() || *again != in) __builtin_trap();
  return 0;
}
