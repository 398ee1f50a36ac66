// Checks that our hand-written protos under api/ are wire-compatible with the
// upstream definitions they stand in for: same packages, names, field numbers,
// types and labels, enum values and RPC signatures. Upstream sources are
// parsed at test time, so nothing upstream is vendored into the tree.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <google/protobuf/compiler/importer.h>
#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include "api/containerd/events/content.pb.h"
#include "api/containerd/events/image.pb.h"
#include "api/containerd/services/content/v1/content.pb.h"
#include "api/containerd/services/events/v1/events.pb.h"
#include "api/containerd/services/images/v1/images.pb.h"
#include "api/containerd/services/leases/v1/leases.pb.h"
#include "api/containerd/services/streaming/v1/streaming.pb.h"
#include "api/containerd/services/transfer/v1/transfer.pb.h"
#include "api/containerd/types/descriptor.pb.h"
#include "api/containerd/types/platform.pb.h"
#include "api/containerd/types/transfer/container.pb.h"
#include "api/containerd/types/transfer/imagestore.pb.h"
#include "api/containerd/types/transfer/importexport.pb.h"
#include "api/containerd/types/transfer/progress.pb.h"
#include "api/containerd/types/transfer/registry.pb.h"
#include "api/containerd/types/transfer/streaming.pb.h"
#include "api/runtime/v1/api.pb.h"

namespace imaged::api {
namespace {

namespace fs = std::filesystem;
using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

constexpr char kDefaultContainerdApiDir[] =
    "/var/cache/imaged/containerd-dev/usr/share/gocode/src/github.com/"
    "containerd/containerd/api";
constexpr char kContainerdImportPrefix[] = "github.com/containerd/containerd/api/";

std::string Env(const char* name, const std::string& fallback = "") {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

// Upstream annotates its protos for Go code generators (gogoproto, containerd's
// fieldpath plugin) and newer protobuf releases (debug_redact). None of that
// changes the wire format, and Debian's protoc knows none of it, so it goes.
// Newlines are kept so that parse errors point at upstream's own lines.
std::string Sanitize(const std::string& text) {
  static const std::regex kWeakImport(R"(import\s+weak\s+"[^"]*"\s*;)");
  static const std::regex kPluginOption(
      R"(option\s*\((gogoproto|containerd\.plugin)\.[\w.]+\)\s*=[^;]*;)");
  // One-line field option lists; quoted values may hold brackets and commas.
  static const std::regex kOptionList(R"(\[(?:[^\[\]"\n]|"(?:[^"\\\n]|\\.)*")*\])");
  static const std::regex kForeignOption(
      R"(\s*(\(gogoproto\.[\w.]+\)|debug_redact)\s*=\s*("(?:[^"\\]|\\.)*"|[^,"]*?)\s*(,|$))");
  static const std::regex kLeftover(R"(^[\s,]+|[\s,]+$)");

  std::string out = std::regex_replace(text, kWeakImport, "");
  out = std::regex_replace(out, kPluginOption, "");

  std::string result;
  auto last = out.cbegin();
  for (std::sregex_iterator it(out.begin(), out.end(), kOptionList), end; it != end; ++it) {
    const std::string list = it->str();
    std::string body = list.substr(1, list.size() - 2);
    result.append(last, (*it)[0].first);
    if (!std::regex_search(body, kForeignOption)) {
      result += list;  // Someone else's brackets, e.g. "[]string" in a comment.
    } else {
      body = std::regex_replace(std::regex_replace(body, kForeignOption, ""), kLeftover, "");
      if (!body.empty()) result += "[" + body + "]";
    }
    last = (*it)[0].second;
  }
  result.append(last, out.cend());
  return result;
}

class CollectErrors : public google::protobuf::compiler::MultiFileErrorCollector {
 public:
  void AddError(const std::string& file, int line, int column,
                const std::string& message) override {
    errors_ += file + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) +
               ": " + message + "\n";
  }
  const std::string& errors() const { return errors_; }

 private:
  std::string errors_;
};

// Upstream protos, sanitized into a scratch tree laid out by import path so
// their own imports resolve; well-known types come from the system headers.
class UpstreamTree {
 public:
  explicit UpstreamTree(const std::string& name)
      : root_(fs::path(testing::TempDir()) / name), importer_(&tree_, &errors_) {
    fs::remove_all(root_);
    fs::create_directories(root_);
    tree_.MapPath("", root_.string());
    tree_.MapPath("", "/usr/include");
  }

  // Returns false (with a failure recorded) if the source cannot be read.
  bool Add(const fs::path& source, const std::string& import_path) {
    std::ifstream in(source);
    if (!in) {
      ADD_FAILURE() << "cannot read upstream proto " << source;
      return false;
    }
    std::stringstream text;
    text << in.rdbuf();
    const fs::path target = root_ / import_path;
    fs::create_directories(target.parent_path());
    std::ofstream(target) << Sanitize(text.str());
    return true;
  }

  const FileDescriptor* Import(const std::string& import_path) {
    return importer_.Import(import_path);
  }
  const DescriptorPool& pool() const { return *importer_.pool(); }
  const std::string& errors() const { return errors_.errors(); }

 private:
  fs::path root_;
  google::protobuf::compiler::DiskSourceTree tree_;
  CollectErrors errors_;
  google::protobuf::compiler::Importer importer_;
};

// Everything about a field that decides how it is encoded or which type it
// decodes into, as one string so that a mismatch reads at a glance.
std::string Signature(const FieldDescriptor& f) {
  static const char* const kLabels[] = {"", "optional", "required", "repeated"};
  std::string s = "#" + std::to_string(f.number()) + " " + kLabels[f.label()] + " " +
                  FieldDescriptor::TypeName(f.type());
  if (f.message_type() != nullptr) s += " " + f.message_type()->full_name();
  if (f.enum_type() != nullptr) s += " " + f.enum_type()->full_name();
  if (f.is_packed()) s += " packed";
  if (f.real_containing_oneof() != nullptr) s += " oneof " + f.real_containing_oneof()->name();
  return s;
}

std::string Signature(const MethodDescriptor& m) {
  return std::string(m.client_streaming() ? "stream " : "") + m.input_type()->full_name() +
         " -> " + (m.server_streaming() ? "stream " : "") + m.output_type()->full_name();
}

template <typename Parent, typename Child, typename SignatureFn>
std::map<std::string, std::string> Members(const Parent& parent, int count,
                                           const Child* (Parent::*at)(int) const,
                                           SignatureFn signature) {
  std::map<std::string, std::string> members;
  for (int i = 0; i < count; ++i) {
    const Child& child = *(parent.*at)(i);
    members[child.name()] = signature(child);
  }
  return members;
}

// Compares our generated descriptors with upstream's by full name and records
// every difference, so one run lists all of them.
class Comparison {
 public:
  // A field of ours that `upstream` lacks is no mismatch when `newer_facts`
  // (facts of a later release of the same API) has it with the same
  // signature: older peers skip it as an unknown field.
  explicit Comparison(const DescriptorPool& upstream,
                      const std::set<std::string>* newer_facts = nullptr)
      : upstream_(upstream), newer_facts_(newer_facts) {}

  // whole_file: we claim to mirror the upstream file, so nothing it declares
  // at top level may be missing here (for CRI we keep a subset on purpose).
  void File(const FileDescriptor& ours, const FileDescriptor& theirs, bool whole_file) {
    facts_.insert("package " + theirs.package());
    if (ours.package() != theirs.package()) {
      Mismatch(ours.name(), "package " + ours.package() + " vs upstream " + theirs.package());
    }
    for (int i = 0; i < ours.message_type_count(); ++i) Message(*ours.message_type(i));
    for (int i = 0; i < ours.enum_type_count(); ++i) Enum(*ours.enum_type(i));
    for (int i = 0; i < ours.service_count(); ++i) Service(*ours.service(i));
    if (!whole_file) return;
    for (int i = 0; i < theirs.message_type_count(); ++i) {
      Present(theirs.message_type(i)->full_name(), ours.pool()->FindMessageTypeByName(
                                                       theirs.message_type(i)->full_name()));
    }
    for (int i = 0; i < theirs.enum_type_count(); ++i) {
      Present(theirs.enum_type(i)->full_name(),
              ours.pool()->FindEnumTypeByName(theirs.enum_type(i)->full_name()));
    }
    for (int i = 0; i < theirs.service_count(); ++i) {
      Present(theirs.service(i)->full_name(),
              ours.pool()->FindServiceByName(theirs.service(i)->full_name()));
    }
  }

  const std::vector<std::string>& mismatches() const { return mismatches_; }

  // What the comparison read of upstream, one line per fact (a message, enum
  // or service that exists, a field's number, label and type, an enum
  // value's number, a method's types), for the declarations we have: the
  // facts our file must match. Compared with upstream itself, these are
  // upstream's; compared with our own pool, they are ours.
  const std::set<std::string>& facts() const { return facts_; }

 private:
  void Message(const Descriptor& ours) {
    const Descriptor* theirs = upstream_.FindMessageTypeByName(ours.full_name());
    if (theirs == nullptr && newer_facts_ != nullptr &&
        newer_facts_->count("message " + ours.full_name()) > 0) {
      return;  // added by the later release, whose facts check it
    }
    if (theirs == nullptr) return Mismatch(ours.full_name(), "message not found upstream");
    facts_.insert("message " + theirs->full_name() + (theirs->options().map_entry() ? " map_entry" : ""));
    if (ours.options().map_entry() != theirs->options().map_entry()) {
      Mismatch(ours.full_name(), "map entry on one side only");
    }
    auto field_sig = [](const FieldDescriptor& f) { return Signature(f); };
    Same(ours.full_name(), Members(ours, ours.field_count(), &Descriptor::field, field_sig),
         Members(*theirs, theirs->field_count(), &Descriptor::field, field_sig));
    for (int i = 0; i < ours.nested_type_count(); ++i) Message(*ours.nested_type(i));
    for (int i = 0; i < ours.enum_type_count(); ++i) Enum(*ours.enum_type(i));
    for (int i = 0; i < theirs->nested_type_count(); ++i) {
      Present(theirs->nested_type(i)->full_name(),
              ours.FindNestedTypeByName(theirs->nested_type(i)->name()));
    }
    for (int i = 0; i < theirs->enum_type_count(); ++i) {
      Present(theirs->enum_type(i)->full_name(),
              ours.FindEnumTypeByName(theirs->enum_type(i)->name()));
    }
  }

  void Enum(const EnumDescriptor& ours) {
    const EnumDescriptor* theirs = upstream_.FindEnumTypeByName(ours.full_name());
    if (theirs == nullptr) return Mismatch(ours.full_name(), "enum not found upstream");
    facts_.insert("enum " + theirs->full_name());
    auto number = [](const auto& v) { return std::to_string(v.number()); };
    Same(ours.full_name(), Members(ours, ours.value_count(), &EnumDescriptor::value, number),
         Members(*theirs, theirs->value_count(), &EnumDescriptor::value, number));
  }

  void Service(const ServiceDescriptor& ours) {
    const ServiceDescriptor* theirs = upstream_.FindServiceByName(ours.full_name());
    if (theirs == nullptr) return Mismatch(ours.full_name(), "service not found upstream");
    facts_.insert("service " + theirs->full_name());
    auto rpc = [](const MethodDescriptor& m) { return Signature(m); };
    Same(ours.full_name(), Members(ours, ours.method_count(), &ServiceDescriptor::method, rpc),
         Members(*theirs, theirs->method_count(), &ServiceDescriptor::method, rpc));
  }

  // Both directions: a field only upstream has would reach us as an unknown
  // field we never read, which breaks a peer as surely as a differing one.
  void Same(const std::string& scope, const std::map<std::string, std::string>& ours,
            const std::map<std::string, std::string>& theirs) {
    for (const auto& [name, sig] : theirs) facts_.insert(scope + "." + name + " " + sig);
    for (const auto& [name, sig] : ours) {
      auto it = theirs.find(name);
      if (it == theirs.end()) {
        if (newer_facts_ != nullptr && newer_facts_->count(scope + "." + name + " " + sig) > 0) {
          continue;
        }
        Mismatch(scope + "." + name, "ours (" + sig + ") is not upstream");
      } else if (it->second != sig) {
        Mismatch(scope + "." + name, "ours (" + sig + ") vs upstream (" + it->second + ")");
      }
    }
    for (const auto& [name, sig] : theirs) {
      if (ours.count(name) == 0) Mismatch(scope + "." + name, "upstream (" + sig + ") missing here");
    }
  }

  void Present(const std::string& full_name, const void* ours) {
    facts_.insert("declared " + full_name);
    if (ours == nullptr) Mismatch(full_name, "declared upstream, missing here");
  }

  void Mismatch(const std::string& where, const std::string& what) {
    mismatches_.push_back(where + ": " + what);
  }

  const DescriptorPool& upstream_;
  const std::set<std::string>* const newer_facts_;
  std::vector<std::string> mismatches_;
  std::set<std::string> facts_;
};

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += "  " + line + "\n";
  return out;
}

// A data file of this test (api/...), from the runfiles.
fs::path Runfile(const std::string& path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  EXPECT_TRUE(srcdir != nullptr && workspace != nullptr) << "run under bazel test";
  return fs::path(srcdir != nullptr ? srcdir : "") / (workspace != nullptr ? workspace : "") / path;
}

// The lines of a facts or gaps file, without comments and blank lines.
std::set<std::string> ReadLines(const fs::path& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << "cannot read " << path;
  std::set<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') lines.insert(line);
  }
  return lines;
}

// What `ours` declares as facts (our files compared with themselves).
std::set<std::string> OwnFacts(const std::vector<std::pair<const FileDescriptor*, std::string>>& files,
                               bool whole_file) {
  Comparison self(*files.front().first->pool());
  for (const auto& [ours, path] : files) self.File(*ours, *ours, whole_file);
  return self.facts();
}

// Facts checked against a file of facts read from upstream: every
// difference, "ours only: <fact>" or "<who> only: <fact>".
std::vector<std::string> FactDifferences(const std::set<std::string>& ours,
                                         const std::set<std::string>& theirs,
                                         const std::string& who) {
  std::vector<std::string> out;
  for (const std::string& f : ours) {
    if (theirs.count(f) == 0) out.push_back("ours only: " + f);
  }
  for (const std::string& f : theirs) {
    if (ours.count(f) == 0) out.push_back(who + " only: " + f);
  }
  return out;
}

// Our containerd files and where each lives under containerd's api/: those
// containerd 1.6 has, and with `with_v2_only` also those only 2.x has.
std::vector<std::pair<const FileDescriptor*, std::string>> ContainerdFiles(bool with_v2_only = true) {
  namespace cd = ::containerd;
  namespace tt = ::containerd::types::transfer;
  std::vector<std::pair<const FileDescriptor*, std::string>> v2_only = {
      {cd::services::transfer::v1::TransferRequest::descriptor()->file(),
       "services/transfer/v1/transfer.proto"},
      {cd::services::streaming::v1::StreamInit::descriptor()->file(),
       "services/streaming/v1/streaming.proto"},
      {tt::ImageStore::descriptor()->file(), "types/transfer/imagestore.proto"},
      {tt::OCIRegistry::descriptor()->file(), "types/transfer/registry.proto"},
      {tt::Progress::descriptor()->file(), "types/transfer/progress.proto"},
      {tt::Data::descriptor()->file(), "types/transfer/streaming.proto"},
      {tt::ImageImportStream::descriptor()->file(), "types/transfer/importexport.proto"},
      {tt::ContainerPath::descriptor()->file(), "types/transfer/container.proto"},
  };
  std::vector<std::pair<const FileDescriptor*, std::string>> files = {
      {cd::types::Platform::descriptor()->file(), "types/platform.proto"},
      {cd::types::Descriptor::descriptor()->file(), "types/descriptor.proto"},
      {cd::services::content::v1::Info::descriptor()->file(), "services/content/v1/content.proto"},
      {cd::services::images::v1::Image::descriptor()->file(), "services/images/v1/images.proto"},
      {cd::services::images::v1::ImageCreate::descriptor()->file(), "events/image.proto"},
      {cd::events::ContentDelete::descriptor()->file(), "events/content.proto"},
      {cd::services::events::v1::Envelope::descriptor()->file(), "services/events/v1/events.proto"},
      {cd::services::leases::v1::Lease::descriptor()->file(), "services/leases/v1/leases.proto"},
  };
  if (with_v2_only) files.insert(files.end(), v2_only.begin(), v2_only.end());
  return files;
}

constexpr char kContainerdV2Facts[] = "api/containerd/containerd_v2.facts";
constexpr char kContainerdV2Gaps[] = "api/containerd/containerd_v2.gaps";

// containerd 1.6 (Debian's packaged API sources), field by field. Fields
// that containerd 2.x added and we serve (containerd_v2.facts) are allowed
// beyond 1.6's.
TEST(ProtoCompatTest, ContainerdApiMatchesUpstream) {
  const fs::path api_dir = Env("IMAGED_CONTAINERD_API_DIR", kDefaultContainerdApiDir);
  ASSERT_TRUE(fs::is_directory(api_dir))
      << "upstream containerd API protos not found at " << api_dir
      << "; run tools/install_deps.sh or point IMAGED_CONTAINERD_API_DIR at containerd's api/";

  const auto files = ContainerdFiles(/*with_v2_only=*/false);
  const std::set<std::string> v2_facts = ReadLines(Runfile(kContainerdV2Facts));

  // Copy everything before importing anything: upstream files import each other.
  UpstreamTree upstream("containerd-api");
  for (const auto& [ours, path] : files) {
    ASSERT_TRUE(upstream.Add(api_dir / path, kContainerdImportPrefix + path));
  }

  Comparison comparison(upstream.pool(), &v2_facts);
  for (const auto& [ours, path] : files) {
    const FileDescriptor* theirs = upstream.Import(kContainerdImportPrefix + path);
    ASSERT_NE(theirs, nullptr) << "cannot parse upstream " << path << ":\n" << upstream.errors();
    comparison.File(*ours, *theirs, /*whole_file=*/true);
  }
  EXPECT_TRUE(comparison.mismatches().empty())
      << "not wire-compatible with containerd:\n" << Join(comparison.mismatches());
}

// containerd 2.x, from facts (api/containerd/containerd_v2.facts, written by
// ContainerdV2ApiMatchesUpstream below from containerd's api/ at the release
// its header names). What differs is exactly what containerd_v2.gaps lists,
// each with why: a new difference (upstream drift, or a change of ours)
// fails, and so does a gap that has closed, until its line is removed.
TEST(ProtoCompatTest, ContainerdV2ApiMatchesFacts) {
  const std::set<std::string> facts = ReadLines(Runfile(kContainerdV2Facts));
  const std::set<std::string> gaps = ReadLines(Runfile(kContainerdV2Gaps));
  ASSERT_FALSE(facts.empty()) << kContainerdV2Facts << " holds no facts";
  std::vector<std::string> unexplained;
  std::set<std::string> seen;
  for (const std::string& d :
       FactDifferences(OwnFacts(ContainerdFiles(), /*whole_file=*/true), facts, "containerd 2.x")) {
    seen.insert(d);
    if (gaps.count(d) == 0) unexplained.push_back(d);
  }
  std::vector<std::string> closed;
  for (const std::string& g : gaps) {
    if (seen.count(g) == 0) closed.push_back(g);
  }
  EXPECT_TRUE(unexplained.empty()) << "differences from containerd 2.x not in " << kContainerdV2Gaps
                                   << ":\n" << Join(unexplained);
  EXPECT_TRUE(closed.empty()) << "gaps in " << kContainerdV2Gaps
                              << " that no longer differ (remove them):\n" << Join(closed);
}

// With IMAGED_CONTAINERD_V2_API_DIR naming containerd 2.x's api/ directory
// (imports there are relative to it), compares with it directly and lists
// the differences; with IMAGED_WRITE_CONTAINERD_V2_FACTS naming a file,
// writes the facts ContainerdV2ApiMatchesFacts checks
// (IMAGED_CONTAINERD_V2_SOURCE goes in the header line).
TEST(ProtoCompatTest, ContainerdV2ApiMatchesUpstream) {
  const fs::path api_dir = Env("IMAGED_CONTAINERD_V2_API_DIR");
  if (api_dir.empty() || !fs::is_directory(api_dir)) {
    GTEST_SKIP() << "IMAGED_CONTAINERD_V2_API_DIR (\"" << api_dir.string()
                 << "\") does not name containerd 2.x's api/ (the facts test covers CI)";
  }
  const auto files = ContainerdFiles();
  UpstreamTree upstream("containerd-v2-api");
  for (const char* imported : {"types/fieldpath.proto", "types/event.proto"}) {
    ASSERT_TRUE(upstream.Add(api_dir / imported, imported));
  }
  for (const auto& [ours, path] : files) ASSERT_TRUE(upstream.Add(api_dir / path, path));
  Comparison comparison(upstream.pool());
  for (const auto& [ours, path] : files) {
    const FileDescriptor* theirs = upstream.Import(path);
    ASSERT_NE(theirs, nullptr) << "cannot parse upstream " << path << ":\n" << upstream.errors();
    comparison.File(*ours, *theirs, /*whole_file=*/true);
  }
  // Not a verdict: the gaps file says which of these are known.
  for (const std::string& m : comparison.mismatches()) std::cout << "differs: " << m << "\n";

  const std::string out = Env("IMAGED_WRITE_CONTAINERD_V2_FACTS");
  if (!out.empty()) {
    std::ofstream facts(out);
    facts << "# " << Env("IMAGED_CONTAINERD_V2_SOURCE", api_dir.string())
          << ": facts for the containerd files under api/containerd/ (api/proto_compat_test.cc "
             "writes and checks them)\n";
    for (const std::string& f : comparison.facts()) facts << f << "\n";
    ASSERT_TRUE(facts.good()) << "cannot write " << out;
  }
}

// cri-api is not packaged for Debian. What our subset of its api.proto must
// match is kept as facts (api/runtime/v1/cri_api.facts: for each message,
// enum and service we declare, upstream's fields with number, label and
// type, enum values and methods), read from cri-api's api.proto by
// CriImageServiceMatchesUpstream below. This test needs no upstream file,
// so it runs everywhere, CI included.
TEST(ProtoCompatTest, CriImageServiceMatchesFacts) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const char* workspace = std::getenv("TEST_WORKSPACE");
  ASSERT_TRUE(srcdir != nullptr && workspace != nullptr) << "run under bazel test";
  const fs::path path = fs::path(srcdir) / workspace / "api/runtime/v1/cri_api.facts";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "cannot read " << path;
  std::set<std::string> facts;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') facts.insert(line);
  }
  ASSERT_FALSE(facts.empty()) << path << " holds no facts";

  // Our file compared with itself gives our facts, in the same lines.
  const FileDescriptor& ours = *::runtime::v1::ImageSpec::descriptor()->file();
  Comparison self(*ours.pool());
  self.File(ours, ours, /*whole_file=*/false);
  std::vector<std::string> differences;
  for (const std::string& f : self.facts()) {
    if (facts.count(f) == 0) differences.push_back("ours only:     " + f);
  }
  for (const std::string& f : facts) {
    if (self.facts().count(f) == 0) differences.push_back("cri-api only:  " + f);
  }
  EXPECT_TRUE(differences.empty()) << "api/runtime/v1/api.proto is not wire-compatible with "
                                   << "the facts read from cri-api:\n" << Join(differences);
}

// With IMAGED_CRI_API_PROTO naming a copy of cri-api's
// pkg/apis/runtime/v1/api.proto, compares with it directly, and with
// IMAGED_WRITE_CRI_FACTS naming a file, writes the facts that
// CriImageServiceMatchesFacts checks (the header line names the source).
TEST(ProtoCompatTest, CriImageServiceMatchesUpstream) {
  const std::string cri_proto = Env("IMAGED_CRI_API_PROTO");
  if (cri_proto.empty() || !fs::is_regular_file(cri_proto)) {
    GTEST_SKIP() << "IMAGED_CRI_API_PROTO (\"" << cri_proto
                 << "\") does not name cri-api's runtime/v1 api.proto (the facts test covers CI)";
  }
  UpstreamTree upstream("cri-api");
  const std::string import_path = "cri-api/pkg/apis/runtime/v1/api.proto";
  ASSERT_TRUE(upstream.Add(cri_proto, import_path));
  const FileDescriptor* theirs = upstream.Import(import_path);
  ASSERT_NE(theirs, nullptr) << "cannot parse " << cri_proto << ":\n" << upstream.errors();

  Comparison comparison(upstream.pool());
  comparison.File(*::runtime::v1::ImageSpec::descriptor()->file(), *theirs,
                  /*whole_file=*/false);
  EXPECT_TRUE(comparison.mismatches().empty())
      << "not wire-compatible with cri-api:\n" << Join(comparison.mismatches());

  const std::string out = Env("IMAGED_WRITE_CRI_FACTS");
  if (!out.empty()) {
    std::ofstream facts(out);
    facts << "# " << Env("IMAGED_CRI_API_SOURCE", cri_proto)
          << ": facts for api/runtime/v1/api.proto (api/proto_compat_test.cc writes and checks them)\n";
    for (const std::string& f : comparison.facts()) facts << f << "\n";
    ASSERT_TRUE(facts.good()) << "cannot write " << out;
  }
}

TEST(ProtoCompatTest, SanitizeDropsOnlyForeignOptions) {
  EXPECT_EQ(Sanitize("import weak \"gogoproto/gogo.proto\";\nstring a = 1 "
                     "[(gogoproto.nullable) = false, deprecated = true];"),
            "\nstring a = 1 [deprecated = true];");
  EXPECT_EQ(Sanitize("option (containerd.plugin.fieldpath_all) = true;\n"
                     "string b = 2 [(gogoproto.moretags) = \"json:\\\"x,y]\\\"\"];"),
            "\nstring b = 2 ;");
  EXPECT_EQ(Sanitize("string c = 3 [debug_redact = true]; // a [ ]string"),
            "string c = 3 ; // a [ ]string");
}

}  // namespace
}  // namespace imaged::api
