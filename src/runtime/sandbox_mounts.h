// The sandbox helper's mount steps (sandbox.cc builds a root with them).
// Internal to the sandbox; each returns false with errno set on failure.
#pragma once

#include <set>
#include <string>

namespace nubo::runtime::sandbox_mounts {

bool writeFileSimple(const std::string& path, const std::string& text);
// Binds `src` at `dst` (made first: a folder, or an empty file) read-only,
// nosuid, nodev.
bool bindReadOnly(const std::string& src, const std::string& dst, bool is_dir);
// Binds a device node at `dst` (made first as an empty file).
bool bindDevice(const std::string& src, const std::string& dst);
// "/a/./b/../c" -> "/a/c" (lexically).
std::string normalizePath(const std::string& path);
// Makes the host path `path` exist in the new root `root` as on the host:
// folders on the way are created, symlinks on the way are copied (and what
// they point to mirrored in turn), and the file or folder itself is bound
// read-only. `bound` holds what is bound already (a path inside one of them
// needs nothing more).
bool mirrorPath(const std::string& root, const std::string& path, std::set<std::string>& bound, int depth = 0);

}  // namespace nubo::runtime::sandbox_mounts
