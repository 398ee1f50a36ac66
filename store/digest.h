// OCI content digests ("sha256:<64 lowercase hex>") and incremental SHA-256.
// imaged stores sha256 content only, as containerd's default store does.
#ifndef IMAGED_STORE_DIGEST_H_
#define IMAGED_STORE_DIGEST_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

// OpenSSL's hash context, declared here so users need not include OpenSSL.
struct evp_md_ctx_st;

namespace imaged::store {

inline constexpr absl::string_view kSha256Prefix = "sha256:";

// Ok when `digest` is "sha256:" followed by 64 lowercase hex digits.
// InvalidArgument otherwise, naming the digest (an empty one included).
absl::Status ValidateDigest(absl::string_view digest);

// The hex part of a digest that passed ValidateDigest.
inline absl::string_view DigestHex(absl::string_view digest) {
  return digest.substr(kSha256Prefix.size());
}

// Incremental SHA-256; Digest() may be called at any point without ending it.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Reset();
  void Update(absl::string_view data);
  // "sha256:<hex>" of everything Updated since the last Reset.
  std::string Digest() const;
  // Hex digest of `data`, for one-shot uses.
  static std::string Hex(absl::string_view data);
  // "sha256:<hex>" of `data`.
  static std::string Of(absl::string_view data);

 private:
  ::evp_md_ctx_st* ctx_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_DIGEST_H_
