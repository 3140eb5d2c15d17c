// SHA-256 digests (OpenSSL EVP underneath) and their lowercase hex form,
// which is how blobs and trees are named everywhere in nubo.
//
// Sha256 is an incremental hasher; not thread-safe, one per thread of use.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo {

using Digest = std::array<uint8_t, 32>;

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(std::string_view bytes);
  void update(const void* data, size_t size);
  Digest finish();        // resets the hasher for reuse
  std::string finishHex();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

std::string sha256Hex(std::string_view bytes);
std::string toHex(const Digest& d);

// True for exactly 64 lowercase hex characters.
bool isSha256Hex(std::string_view s);

// Hashes a whole file by streaming it; NotFound / PermissionDenied from errno.
Result<std::string> sha256File(const std::string& path, uint64_t* size_out = nullptr);

}  // namespace nubo
