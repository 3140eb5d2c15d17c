// Standard base64 (RFC 4648, with padding), by OpenSSL's EVP_EncodeBlock.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace nubo {

std::string base64(std::string_view in);
// The bytes of `in`, or nullopt when it is not the one canonical encoding
// of some bytes (bad length or characters, or set bits that base64 leaves
// unused: a changed character is never read as the same bytes).
std::optional<std::string> unbase64(std::string_view in);

}  // namespace nubo
