// imagectl import / export against two real imaged servers: an image leaves
// one through an archive and arrives in the other under the same image ID.
#include "tools/imagectl/archive_commands.h"

#include <fstream>
#include <iterator>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "api/imaged/v1/archives.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/test_server.h"
#include "store/files.h"
#include "store/test_images.h"
#include "tools/imagectl/commands.h"

namespace imaged::imagectl {
namespace {

using ::testing::HasSubstr;

class ArchiveCommandsTest : public ::testing::Test {
 protected:
  ArchiveCommandsTest()
      : from_channel_(Connect(from_.config().address)),
        to_channel_(Connect(to_.config().address)),
        dir_(plugin::MakeShortTempDir()) {}
  ~ArchiveCommandsTest() override { store::RemoveAll(dir_).IgnoreError(); }

  store::TestImage Add(const std::string& name, const std::string& seed) {
    plugin::RemoteContentStore content(from_.channel());
    plugin::RemoteImageStore images(from_.channel());
    store::TestImageSpec spec;
    spec.seed = seed;
    auto ti = store::MakeTestImage(content, "k8s.io", spec);
    EXPECT_TRUE(ti.ok());
    store::Image image;
    image.name = name;
    image.target = ti->manifest;
    image.target.platform.reset();
    EXPECT_TRUE(images.Create("k8s.io", image).ok());
    return *ti;
  }

  // Runs `imagectl ARGS...` (parsing included) against `ch`.
  absl::Status Run(const std::shared_ptr<grpc::Channel>& ch, std::vector<std::string> args,
                   std::string* out) {
    CLI::App app;
    ArchiveCommands commands(app);
    args.insert(args.begin(), "imagectl");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    try {
      app.parse(static_cast<int>(argv.size()), argv.data());
    } catch (const CLI::ParseError& e) {
      return absl::InvalidArgumentError(e.what());
    }
    std::ostringstream os;
    absl::Status s = commands.Run(ch, os);
    *out = os.str();
    return s;
  }

  plugin::ServerFixture from_;
  plugin::ServerFixture to_;
  std::shared_ptr<grpc::Channel> from_channel_;
  std::shared_ptr<grpc::Channel> to_channel_;
  std::string dir_;
};

TEST_F(ArchiveCommandsTest, ExportThenImportKeepsTheImageId) {
  store::TestImage a = Add("docker.io/library/alpha:1", "a");
  store::TestImage b = Add("quay.io/x/beta:2", "b");
  std::string file = dir_ + "/images.tar";
  std::string out;
  absl::Status s = Run(from_channel_, {"export", "alpha:1", "quay.io/x/beta:2", file}, &out);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out, HasSubstr("exported 2 image(s) to " + file));

  s = Run(to_channel_, {"import", file}, &out);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("docker.io/library/alpha:1\t", a.manifest.digest, "\t",
                                          a.config.digest, "\n")));
  EXPECT_THAT(out, HasSubstr(absl::StrCat("quay.io/x/beta:2\t", b.manifest.digest, "\t",
                                          b.config.digest, "\n")));
  EXPECT_THAT(out, HasSubstr("imported 2 image(s) into namespace k8s.io"));

  std::ostringstream ids;
  ASSERT_TRUE(Images(to_channel_, "", false, true, ids).ok());
  std::vector<std::string> want = {a.config.digest, b.config.digest};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(ids.str(), absl::StrCat(want[0], "\n", want[1], "\n"));
}

TEST_F(ArchiveCommandsTest, NamespaceFlagChoosesWhereImagesGo) {
  Add("docker.io/library/alpha:1", "a");
  std::string file = dir_ + "/a.tar";
  std::string out;
  ASSERT_TRUE(Run(from_channel_, {"export", "alpha:1", file}, &out).ok());
  ASSERT_TRUE(Run(to_channel_, {"import", "-n", "other", file}, &out).ok()) << out;
  plugin::RemoteImageStore images(to_.channel());
  EXPECT_TRUE(images.Get("other", "docker.io/library/alpha:1").ok());
  EXPECT_TRUE(absl::IsNotFound(images.Get("k8s.io", "docker.io/library/alpha:1").status()));
}

TEST_F(ArchiveCommandsTest, ExportErrorsLeaveNoFile) {
  std::string file = dir_ + "/none.tar";
  std::string out;
  absl::Status s = Run(from_channel_, {"export", "missing:1", file}, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_FALSE(store::FileSize(file).ok());
  // One argument is not IMAGE... FILE.
  EXPECT_TRUE(absl::IsInvalidArgument(Run(from_channel_, {"export", file}, &out)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      Run(from_channel_, {"export", "--platform", "a/b/c/d", "x:1", file}, &out)));
}

TEST_F(ArchiveCommandsTest, ImportOfAMissingFileIsNotFound) {
  std::string out;
  absl::Status s = Run(to_channel_, {"import", dir_ + "/nope.tar"}, &out);
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("nope.tar"));
}

// The server's import names the file as the client-side one does.
TEST_F(ArchiveCommandsTest, ErrorsOfEitherImportNameTheFile) {
  Add("docker.io/library/alpha:1", "a");
  std::string file = dir_ + "/whole.tar", out;
  ASSERT_TRUE(Run(from_channel_, {"export", "alpha:1", file}, &out).ok());
  std::string bytes;
  {
    std::ifstream in(file, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string truncated = dir_ + "/truncated.tar";
  std::ofstream(truncated, std::ios::binary) << bytes.substr(0, 3000);
  for (bool content_api : {false, true}) {
    std::vector<std::string> args = {"import", "-n", "broken", truncated};
    if (content_api) args.push_back("--content-api");
    absl::Status s = Run(to_channel_, args, &out);
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(s.message(), HasSubstr("archive " + truncated + ": ")) << s;
    EXPECT_THAT(s.message(), HasSubstr("truncated")) << s;
  }
  plugin::RemoteImageStore images(to_.channel());
  EXPECT_TRUE(images.List("broken", {})->empty());
}

// The bulk path (Archives.Import, batched on the server) and the Content API
// path (one call at a time, from here) make the same images.
TEST_F(ArchiveCommandsTest, BulkAndContentApiImportsAgree) {
  Add("docker.io/library/alpha:1", "a");
  Add("quay.io/x/beta:2", "b");
  std::string file = dir_ + "/images.tar";
  std::string out;
  ASSERT_TRUE(Run(from_channel_, {"export", "alpha:1", "quay.io/x/beta:2", file}, &out).ok());
  std::string bulk, plain;
  ASSERT_TRUE(Run(to_channel_, {"import", "-n", "bulk", file}, &bulk).ok()) << bulk;
  ASSERT_TRUE(Run(to_channel_, {"import", "-n", "plain", "--content-api", file}, &plain).ok())
      << plain;
  // The same lines; the second namespace finds the first one's blobs.
  EXPECT_EQ(absl::StrReplaceAll(bulk, {{"namespace bulk: 8 blob(s) written, 0", "X"}}),
            absl::StrReplaceAll(plain, {{"namespace plain: 0 blob(s) written, 8", "X"}}));
  EXPECT_THAT(bulk, HasSubstr("imported 2 image(s)"));
  // Again: every blob present, both names retargeted in place.
  ASSERT_TRUE(Run(to_channel_, {"import", "-n", "bulk", file}, &bulk).ok()) << bulk;
  EXPECT_THAT(bulk, HasSubstr(": 0 blob(s) written, 8 already present"));
  std::ostringstream check;
  ASSERT_TRUE(Check(to_channel_, false, check).ok()) << check.str();
}

// Archives.Import's own refusals, each leaving the namespace empty.
TEST_F(ArchiveCommandsTest, ArchivesImportRefusesBadStreams) {
  auto stub = ::imaged::v1::Archives::NewStub(to_channel_);
  auto call = [&](bool with_namespace, std::vector<::imaged::v1::ImportRequest> msgs) {
    grpc::ClientContext ctx;
    if (with_namespace) ctx.AddMetadata("containerd-namespace", "k8s.io");
    ::imaged::v1::ImportResponse resp;
    auto writer = stub->Import(&ctx, &resp);
    for (const auto& m : msgs) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  };
  ::imaged::v1::ImportRequest first;
  first.mutable_options()->set_base_name("docker.io/x/y");
  first.set_data("not a tar");
  EXPECT_EQ(call(false, {first}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(call(true, {first}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(call(true, {}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ::imaged::v1::ImportRequest again = first;
  again.set_data("");
  EXPECT_EQ(call(true, {again, again}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ::imaged::v1::ImportRequest big;
  big.set_data(std::string(5 << 20, 'x'));
  grpc::Status s = call(true, {again, big});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_LT(s.error_message().size(), 200u);
  ::imaged::v1::ImportRequest bad_platform = first;
  bad_platform.mutable_options()->set_platform("a/b/c/d");
  EXPECT_EQ(call(true, {bad_platform}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ::imaged::v1::ImportRequest bad_base = first;
  bad_base.mutable_options()->set_base_name(std::string(600, 'x'));
  EXPECT_EQ(call(true, {bad_base}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  plugin::RemoteImageStore images(to_.channel());
  EXPECT_TRUE(images.List("k8s.io", {})->empty());
}

}  // namespace
}  // namespace imaged::imagectl
