#include "store/digest.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace imaged::store {
namespace {

std::string ToHex(const unsigned char* bytes, size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[bytes[i] >> 4];
    out[2 * i + 1] = kHex[bytes[i] & 0xf];
  }
  return out;
}

}  // namespace

absl::Status ValidateDigest(absl::string_view digest) {
  if (digest.empty()) return absl::InvalidArgumentError("empty digest");
  if (!absl::StartsWith(digest, kSha256Prefix)) {
    if (digest.find(':') == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("digest \"", digest, "\": invalid format"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("digest \"", digest, "\": unsupported digest algorithm"));
  }
  absl::string_view hex = DigestHex(digest);
  if (hex.size() != 2 * SHA256_DIGEST_LENGTH) {
    return absl::InvalidArgumentError(
        absl::StrCat("digest \"", digest, "\": invalid checksum digest length"));
  }
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return absl::InvalidArgumentError(
          absl::StrCat("digest \"", digest, "\": invalid checksum digest format"));
    }
  }
  return absl::OkStatus();
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) { Reset(); }

Sha256::~Sha256() { EVP_MD_CTX_free(ctx_); }

void Sha256::Reset() { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }

void Sha256::Update(absl::string_view data) { EVP_DigestUpdate(ctx_, data.data(), data.size()); }

std::string Sha256::Digest() const {
  // Finalising a copy keeps the running hash open for more data.
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  EVP_MD_CTX_copy_ex(copy, ctx_);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(copy, md, &len);
  EVP_MD_CTX_free(copy);
  return absl::StrCat(kSha256Prefix, ToHex(md, len));
}

std::string Sha256::Hex(absl::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return ToHex(md, sizeof(md));
}

std::string Sha256::Of(absl::string_view data) { return absl::StrCat(kSha256Prefix, Hex(data)); }

}  // namespace imaged::store
