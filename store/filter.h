// containerd's filter language (the `filters` argument of List RPCs in the
// Images, Content and Leases services), parsed once and matched many times.
//
// Grammar, as containerd accepts it:
//
//   filters   := filter*                    (any filter matches: OR)
//   filter    := "" | selector ("," selector)*   (every selector: AND)
//   selector  := fieldpath [operator value]
//   fieldpath := field ("." field)*
//   field     := [A-Za-z0-9_]+ | "double-quoted"
//   operator  := "==" | "!=" | "~="
//   value     := "double-quoted" | unquoted run of printable non-space,
//                non-comma characters ("~=" also accepts /re/ and |re|)
//
// Quoted text uses Go escape syntax (\n, \t, \\, \", \x41, \101, \u263a,
// \U0001F600, ...). Whitespace may precede a field, operator or value, but not
// a "," or "." nor end the filter: upstream rejects `name==a ,b`, `labels .a`
// and `name==a `, so we do too.
//
// Matching, given the adaptor's (value, present) for a selector's fieldpath:
//   bare fieldpath   present
//   ==               present and value equal
//   !=               value (or "" when absent) differs
//   ~=               RE2 regexp finds a match anywhere in value (or "" when
//                    absent); add ^...$ to anchor
//
// Thread-safety: a Filter is immutable after parsing; Match may be called
// concurrently. Copies share compiled regexps.

#ifndef IMAGED_STORE_FILTER_H_
#define IMAGED_STORE_FILTER_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace imaged::store {

// Maps a fieldpath (e.g. {"labels", "io.cri-containerd.image"} or
// {"target", "digest"}) of one object to its value. Returns std::nullopt when
// the object has no such field; the returned view must stay valid while the
// adaptor is alive, so implementations return views into the object itself.
class FieldAdaptor {
 public:
  virtual ~FieldAdaptor() = default;
  virtual std::optional<absl::string_view> Field(
      absl::Span<const std::string> fieldpath) const = 0;
};

// Looks up a map-valued field (labels, annotations) for a FieldAdaptor: `rest`
// is the fieldpath after the map's own name, joined with "." into the key so
// that `labels.a.b` finds the key "a.b" exactly as containerd does. Returns a
// view into `m`, or std::nullopt when the key is missing or `rest` is empty.
std::optional<absl::string_view> MapField(
    absl::Span<const std::string> rest,
    const std::map<std::string, std::string>& m);

// A parsed set of filter strings: a disjunction of conjunctions of selectors.
// Cheap to copy; a default-constructed Filter matches everything.
class Filter {
 public:
  // Operators of a selector; kPresent is a bare fieldpath.
  enum class Op { kPresent, kEqual, kNotEqual, kMatches };

  // One `fieldpath[op value]` term. `regexp` is set only for kMatches.
  struct Selector {
    std::vector<std::string> fieldpath;
    Op op = Op::kPresent;
    std::string value;
    std::shared_ptr<const re2::RE2> regexp;
  };

  // Matches everything, like ParseAll({}).
  Filter();

  // Parses one filter string (a conjunction). "" matches everything. On a
  // syntax error, or a "~=" value that is not a valid RE2 regexp, returns
  // InvalidArgument naming the filter, the problem and its byte offset.
  static absl::StatusOr<Filter> Parse(absl::string_view s);

  // Parses the filters of a List request: matches an object when any of them
  // does. No filters, or any "" among them, matches everything. Fails with
  // the first filter's InvalidArgument if any filter is malformed.
  static absl::StatusOr<Filter> ParseAll(absl::Span<const std::string> filters);

  // Whether the object behind `adaptor` satisfies the filter.
  bool Match(const FieldAdaptor& adaptor) const;

  // True when Match is true for every object, so callers can skip building
  // adaptors (and skip index-unfriendly scans) entirely.
  bool MatchesAll() const;

  // The parsed form: OR over the outer vector, AND over each inner one. An
  // empty inner vector matches everything.
  const std::vector<std::vector<Selector>>& disjuncts() const {
    return disjuncts_;
  }

 private:
  explicit Filter(std::vector<std::vector<Selector>> disjuncts)
      : disjuncts_(std::move(disjuncts)) {}

  std::vector<std::vector<Selector>> disjuncts_;
};

}  // namespace imaged::store

#endif  // IMAGED_STORE_FILTER_H_
