// SecretBox: encrypts secret values at rest with AES-256-GCM (OpenSSL),
// under a 32-byte key kept in a file of its own (mode 0600), never in the
// metadata store.
//
// A sealed value is "nubo-secret-v1:" + base64(key id (8 bytes: the start
// of the key's SHA-256) | nonce (12 random bytes) | ciphertext | tag (16)),
// bound by the associated data to the app and the name it is stored under:
// a ciphertext copied to another secret, or changed by one byte, does not
// open (an internal error naming the app and name), rather than yielding garbage.
//
// Key rotation: a box holds the current key and, while a rotation is under
// way, the next one; values open under either (the key id says which), and
// seal() uses the newest. Thread-safe (immutable after construction).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"

namespace nubo {

class SecretBox {
 public:
  // Reads the key at `key_path`, creating it (random, mode 0600) when
  // missing; and the key at `next_path` when that file exists (a rotation
  // that has not finished). kFailedPrecondition naming the file when a key
  // file is not 32 bytes or is readable by others.
  static Result<SecretBox> open(const std::string& key_path, const std::string& next_path);

  // A box of the given raw 32-byte key(s), for tests.
  static Result<SecretBox> fromKeys(std::string current, std::string next = "");

  std::string seal(std::string_view plaintext, std::string_view app, std::string_view name) const;
  Result<std::string> unseal(std::string_view sealed, std::string_view app, std::string_view name) const;

  // Whether `sealed` is sealed under the newest key (a rotation has nothing
  // left to do for it).
  bool sealedWithNewest(std::string_view sealed) const;
  bool rotating() const { return next_.has_value(); }
  // Names the current key (8 hex digits of its hash; it says nothing of
  // the key): nodes of a fleet compare it.
  std::string keyId() const;

  // Writes a new random key to `path` (mode 0600, fsynced).
  static Status createKeyFile(const std::string& path);

 private:
  struct Key {
    std::string bytes;  // 32
    std::string id;     // 8
  };
  const Key& newest() const { return next_ ? *next_ : current_; }
  static Key makeKey(std::string bytes);

  Key current_;
  std::optional<Key> next_;
};

}  // namespace nubo
