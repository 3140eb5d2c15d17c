// Authenticator: checks "Authorization: Bearer <token>" against the token
// hashes in the MetadataStore (tokens themselves are never stored).
// kUnauthenticated with a message saying how to fix it. Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "store/metadata_store.h"

namespace nubo::api {

class Authenticator {
 public:
  explicit Authenticator(store::MetadataStore& store) : store_(store) {}

  // The token's name (the actor recorded on what it does).
  Result<std::string> authenticate(std::string_view authorization_header);

  // Stores the hash of `token` under `name`, so the token authenticates.
  Status registerToken(std::string_view token, std::string_view name, int64_t now_ms);

 private:
  store::MetadataStore& store_;
};

}  // namespace nubo::api
