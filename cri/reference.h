// Image references and image IDs as Docker and containerd 1.6's CRI plugin
// read them, so that imaged answers kubelet's ImageService with the same
// names, the same normalisation and the same errors containerd would.
//
// Grammar (docker/distribution, as vendored in containerd 1.6; no IPv6 hosts):
//
//   reference  := name [ ":" tag ] [ "@" digest ]
//   name       := [ domain "/" ] component ( "/" component )*   (<= 255 chars)
//   domain     := host-label ( "." host-label )* [ ":" port ]   (any case)
//   component  := [a-z0-9]+ ( ( "." | "_" | "__" | "-"* ) [a-z0-9]+ )*
//   tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//   digest     := algorithm ":" hex, where the algorithm must be sha256,
//                 sha384 or sha512 and hex exactly 64/96/128 lowercase digits
//
// Docker normalisation: a first component that has no "." or ":" and is not
// "localhost" is not a domain, so the domain becomes "docker.io"; the
// legacy "index.docker.io" also becomes "docker.io"; a one-component path on
// docker.io gains "library/". The 255-character limit applies to the
// normalised name ("docker.io/library/..." included).
//
// How the CRI ImageService resolves the image string kubelet or crictl sends
// (containerd's localResolve), which callers of this library must follow:
//   1. a full digest ("sha256:<64 hex>") is looked up as an image ID;
//   2. otherwise NormalizeImageRef(s), when it parses, is looked up by name;
//   3. when that finds nothing (or does not parse), s is taken as a possibly
//      truncated image ID: ImageIdPrefix(s), then a prefix scan over IDs.
// So "abcdef" is first the image docker.io/library/abcdef:latest and only
// then an ID prefix, and a bare 64-hex string (which is never a name) is an
// ID.
#ifndef IMAGED_CRI_REFERENCE_H_
#define IMAGED_CRI_REFERENCE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "store/image_store.h"

namespace imaged::cri {

// A named reference after Docker normalisation. Parts that are absent are
// empty. When ParseNormalizedNamed returns one, `path` is never empty and
// `digest`, when set, is a validated "<algorithm>:<hex>".
struct Reference {
  // "docker.io", "quay.io", "localhost:5000". Empty in one upstream quirk:
  // the first component looked like a host ("my_registry.local/app", it has
  // a ".") but is not a valid domain, while it is a valid path component;
  // then `path` holds the whole name and String() is still the input name.
  std::string domain;
  std::string path;    // "library/busybox", "kubernetes/pause"
  std::string tag;     // "1.36"
  std::string digest;  // "sha256:<64 hex>"

  // "domain/path", or just `path` when `domain` is empty.
  std::string Name() const;
  // Name() then ":tag" if there is a tag, then "@digest" if there is a
  // digest: the fully qualified form containerd stores and CRI reports.
  std::string String() const;
  // Docker's short form for messages: "docker.io/" is dropped, and so is
  // "library/" when it is followed by exactly one component:
  // "busybox:latest", "user/app@sha256:...", "quay.io/a/b:1",
  // "library/a/b" (kept: two components follow).
  std::string Familiar() const;

  friend bool operator==(const Reference& a, const Reference& b) {
    return a.domain == b.domain && a.path == b.path && a.tag == b.tag &&
           a.digest == b.digest;
  }
};

// Parses `s` as Docker does (docker/distribution ParseNormalizedNamed):
// normalises a familiar name ("busybox", "user/repo", "busybox:1.36") to a
// fully qualified one and keeps the tag and digest as given (both may be
// present). InvalidArgument, naming `s` and the reason, when `s` is empty,
// is a 64-hex string (an image ID, not a name), has uppercase letters in the
// repository path, does not match the grammar (bad tag, bad characters,
// empty components, "///", leading separators), has a digest whose algorithm
// is unsupported or whose hex has the wrong length or case, or normalises to
// a name longer than 255 characters.
absl::StatusOr<Reference> ParseNormalizedNamed(absl::string_view s);

// containerd's ParseDockerRef, as a string: ParseNormalizedNamed, then
//   - neither tag nor digest: ":latest" is added;
//   - both tag and digest: the tag is dropped ("name@digest"), since the
//     digest alone identifies the content;
//   - otherwise unchanged.
// Returns Reference::String() of the result; errors are ParseNormalizedNamed's.
// This is the key containerd (and imaged) stores and looks image names up by.
absl::StatusOr<std::string> NormalizeImageRef(absl::string_view s);

namespace internal {
// The grammar's captures of "domain/remainder" (views into it).
struct ReferenceParts {
  absl::string_view domain, path, tag, digest;
};
// Without RE2, for references whose first segment is a domain; nullopt
// when it cannot tell (RE2 then decides). Whatever it returns, RE2 returns
// too (tested on generated strings).
std::optional<ReferenceParts> SplitReferenceFast(absl::string_view full);
// RE2's match of the grammar; nullopt when `full` is not a reference.
std::optional<ReferenceParts> SplitReferenceRe2(absl::string_view full);
}  // namespace internal

// The CRI view of one image's names.
struct RepoRefs {
  // "docker.io/library/busybox:1.36"
  std::vector<std::string> repo_tags;
  // "docker.io/library/busybox@sha256:<hex>"
  std::vector<std::string> repo_digests;
};

// How containerd's CRI plugin turns the names (containerd image names) of one
// image into runtime.Image.repo_tags and repo_digests. Each name is read as
// Docker's ParseAnyReference does:
//   - a bare 64-hex identifier or any valid digest ("sha256:<id>", the name
//     the CRI plugin gives an image's ID so it survives restarts) is not a
//     repository reference and is left out;
//   - a name that does not parse is left out;
//   - a name with a digest goes to repo_digests, even when it also has a tag
//     (then as "name:tag@digest");
//   - a name with a tag only goes to repo_tags;
//   - a bare name (no tag, no digest) is left out.
// Entries are fully qualified (Reference::String()): "busybox:1.36" is
// reported as "docker.io/library/busybox:1.36", as crictl shows it.
// Order is stable and independent of the input order: repo_tags sorted by
// string; repo_digests with "name:tag@digest" entries first, then by string
// (containerd's sortReferences ranking). Duplicates (also those that only
// become equal after normalisation) appear once.
RepoRefs SplitImageNames(absl::Span<const std::string> names);

// How CRI reports one name (the per-name half of SplitImageNames), for the
// index to store when the name is written.
store::CriName ClassifyImageName(absl::string_view name);
// SplitImageNames over names already classified: sorting and deduplication
// only, no parsing (the ListImages path).
RepoRefs RepoRefsOf(absl::Span<const store::CriName> refs);

// True when `s` is a full image ID: "sha256:" followed by 64 lowercase hex
// digits, or those 64 hex digits alone (Docker's identifier form, which can
// never be a repository name). Other digest algorithms are not image IDs
// here: image IDs are config digests, and imaged stores sha256 only.
bool IsImageId(absl::string_view s);
// An ID IsImageId accepts, with its "sha256:".
std::string FullImageId(absl::string_view id);

// For a possibly truncated image ID as kubelet or crictl may pass it, with or
// without "sha256:", the "sha256:<hex prefix>" to prefix-scan the image-ID
// index with; nullopt when `s` cannot match any ID.
//
// Accepted: 1 to 64 lowercase hex digits, optionally after "sha256:". Like
// containerd's digest set there is no minimum length beyond one digit: "a"
// is a valid prefix. Uppercase hex, other characters, other algorithms, more
// than 64 digits, and "sha256:" alone give nullopt (containerd: not found).
// A full-length input yields the full ID, which matches at most one image.
// The one deliberate difference: containerd's digest set lets "" match when
// the store holds exactly one image; here "" is never an ID.
//
// The caller scans and decides: exactly one matching ID resolves to it; none
// is not found; more than one is ambiguous and must resolve to no image at
// all (never "the first one"). containerd reports ambiguity as an error from
// ImageStatus and RemoveImage ("ambiguous digest string"), not as the empty
// not-found answer; the caller chooses which, but never picks an image.
std::optional<std::string> ImageIdPrefix(absl::string_view s);

}  // namespace imaged::cri

#endif  // IMAGED_CRI_REFERENCE_H_
