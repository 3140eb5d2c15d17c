#include "common/secret_box.h"

#include "common/base64.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <memory>

#include "common/fs.h"
#include "common/ids.h"
#include "common/sha256.h"

namespace nubo {
namespace {

constexpr std::string_view kPrefix = "nubo-secret-v1:";
constexpr size_t kKeyBytes = 32, kIdBytes = 8, kNonceBytes = 12, kTagBytes = 16;

// What a value is bound to: a ciphertext opens only as the secret it was made for.
std::string associatedData(std::string_view app, std::string_view name) {
  std::string ad = "nubo-secret";
  ad += '\0';
  ad += app;
  ad += '\0';
  ad += name;
  return ad;
}

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

Result<std::string> readKeyFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return NotFound("secret key file " + path + " not found");
  if ((st.st_mode & 077) != 0) {
    return FailedPrecondition("secret key file " + path + " may be read by others (mode " +
                              std::to_string(st.st_mode & 0777) + " octal " + [&] {
                                char m[8];
                                std::snprintf(m, sizeof m, "%03o", st.st_mode & 0777);
                                return std::string(m);
                              }() + "); chmod 600 it");
  }
  ASSIGN_OR_RETURN(std::string key, readFile(path, 4096));
  if (key.size() != kKeyBytes) {
    return FailedPrecondition("secret key file " + path + " has " + std::to_string(key.size()) +
                              " bytes, not 32; restore it from a backup (secrets sealed under it cannot be "
                              "read without it)");
  }
  return key;
}

}  // namespace

SecretBox::Key SecretBox::makeKey(std::string bytes) {
  Key k;
  k.id = sha256Hex(bytes).substr(0, kIdBytes);  // (8 hex digits: which key, not a secret)
  k.bytes = std::move(bytes);
  return k;
}

std::string SecretBox::keyId() const { return current_.id; }

Status SecretBox::createKeyFile(const std::string& path) {
  return writeFileAtomic(path, randomBytes(kKeyBytes), 0600).withContext("write secret key " + path);
}

Result<SecretBox> SecretBox::open(const std::string& key_path, const std::string& next_path) {
  auto current = readKeyFile(key_path);
  if (!current.ok() && current.status().code() == Code::kNotFound) {
    RETURN_IF_ERROR(createKeyFile(key_path));
    current = readKeyFile(key_path);
  }
  if (!current.ok()) return current.status();
  std::string next;
  if (!next_path.empty()) {
    auto n = readKeyFile(next_path);
    if (n.ok()) next = std::move(n).value();
    else if (n.status().code() != Code::kNotFound) return n.status();
  }
  return fromKeys(std::move(current).value(), std::move(next));
}

Result<SecretBox> SecretBox::fromKeys(std::string current, std::string next) {
  if (current.size() != kKeyBytes || (!next.empty() && next.size() != kKeyBytes)) {
    return InvalidArgument("a secret key has 32 bytes");
  }
  SecretBox box;
  box.current_ = makeKey(std::move(current));
  if (!next.empty()) box.next_ = makeKey(std::move(next));
  return box;
}

std::string SecretBox::seal(std::string_view plaintext, std::string_view app, std::string_view name) const {
  const Key& key = newest();
  std::string nonce = randomBytes(kNonceBytes);
  std::string ad = associatedData(app, name);
  std::string out = key.id + nonce;
  out.resize(out.size() + plaintext.size() + kTagBytes);
  auto* ct = reinterpret_cast<unsigned char*>(out.data()) + kIdBytes + kNonceBytes;
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  bool ok = ctx && EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
            EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key.bytes.data()),
                               reinterpret_cast<const unsigned char*>(nonce.data())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(ad.data()),
                              static_cast<int>(ad.size())) == 1 &&
            EVP_EncryptUpdate(ctx.get(), ct, &len, reinterpret_cast<const unsigned char*>(plaintext.data()),
                              static_cast<int>(plaintext.size())) == 1 &&
            EVP_EncryptFinal_ex(ctx.get(), ct + len, &len) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagBytes, ct + plaintext.size()) == 1;
  if (!ok) std::abort();  // (AES-GCM with a valid key does not fail)
  return std::string(kPrefix) + base64(out);
}

Result<std::string> SecretBox::unseal(std::string_view sealed, std::string_view app, std::string_view name) const {
  std::string what = "secret " + std::string(name) + " of app " + std::string(app);
  if (sealed.substr(0, kPrefix.size()) != kPrefix) return Internal(what + " is not a sealed value");
  auto raw = unbase64(sealed.substr(kPrefix.size()));
  if (!raw || raw->size() < kIdBytes + kNonceBytes + kTagBytes) return Internal(what + " is damaged (not decodable)");
  std::string_view id = std::string_view(*raw).substr(0, kIdBytes);
  const Key* key = id == current_.id ? &current_ : next_ && id == next_->id ? &*next_ : nullptr;
  if (!key) {
    return Internal(what + " was sealed under another secret key than this server's (--secret-key-file); "
                    "restore that key file");
  }
  const auto* nonce = reinterpret_cast<const unsigned char*>(raw->data()) + kIdBytes;
  size_t ct_len = raw->size() - kIdBytes - kNonceBytes - kTagBytes;
  const auto* ct = nonce + kNonceBytes;
  std::string tag = raw->substr(raw->size() - kTagBytes);
  std::string ad = associatedData(app, name);
  std::string plain(ct_len, '\0');
  CipherCtx ctx(EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free);
  int len = 0;
  bool ok = ctx && EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceBytes, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, reinterpret_cast<const unsigned char*>(key->bytes.data()),
                               nonce) == 1 &&
            EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(ad.data()),
                              static_cast<int>(ad.size())) == 1 &&
            EVP_DecryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()), &len, ct,
                              static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagBytes, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(plain.data()) + len, &len) == 1;
  if (!ok) {
    return Internal(what + " does not decrypt: its stored ciphertext was changed, or belongs to another secret");
  }
  return plain;
}

bool SecretBox::sealedWithNewest(std::string_view sealed) const {
  if (sealed.substr(0, kPrefix.size()) != kPrefix) return false;
  auto raw = unbase64(sealed.substr(kPrefix.size()));
  return raw && raw->size() >= kIdBytes && raw->substr(0, kIdBytes) == newest().id;
}

}  // namespace nubo
