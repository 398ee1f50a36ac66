// The Transfer and Streaming services over a real imaged, driven the way
// ctr 2.x drives them (plugin/transfer_client.h): export and import through
// streams with progress, containerd's naming rules for imports, and what
// the server refuses. Pulls from a registry: testdata/transfer_test.sh.
#include <google/protobuf/empty.pb.h>
#include <grpcpp/client_context.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "api/containerd/services/streaming/v1/streaming.grpc.pb.h"
#include "api/containerd/types/transfer/imagestore.pb.h"
#include "api/containerd/types/transfer/importexport.pb.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/leases_client.h"
#include "plugin/test_server.h"
#include "plugin/transfer_client.h"
#include "store/test_images.h"

namespace imaged::plugin {
namespace {

namespace ttypes = ::containerd::types::transfer;
namespace streamingpb = ::containerd::services::streaming::v1;

constexpr char kName[] = "docker.io/library/app:1";

class TransferTest : public ::testing::Test {
 protected:
  TransferTest()
      : content_(f_.channel()), images_(f_.channel()), leases_(f_.channel()),
        client_(f_.channel()) {}

  // An image named kName in `ns`; returns its manifest descriptor.
  store::Descriptor AddImage(const std::string& ns, const std::string& seed = "a") {
    store::TestImageSpec spec;
    spec.seed = seed;
    spec.layer_size = 100 << 10;  // more than one window of the client
    auto image = store::MakeTestImage(content_, ns, spec);
    EXPECT_TRUE(image.ok()) << image.status();
    store::Image record;
    record.name = kName;
    record.target = image->manifest;
    record.target.platform.reset();
    EXPECT_TRUE(images_.Create(ns, record).ok());
    return record.target;
  }

  TransferCall Call(const std::string& ns) {
    TransferCall call;
    call.ns = ns;
    call.progress = [this](const TransferProgress& p) {
      absl::MutexLock lock(&mu_);
      events_.push_back(p);
    };
    return call;
  }

  // The events seen so far, "event" or "event name".
  std::vector<std::string> Events() {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const TransferProgress& p : events_) {
      out.push_back(p.name.empty() ? p.event : p.event + " " + p.name);
    }
    events_.clear();
    return out;
  }

  absl::StatusOr<std::string> ExportArchive(const std::string& ns,
                                            const std::vector<std::string>& names) {
    std::string archive;
    absl::Status s = client_.Export(
        Call(ns), names,
        [&](absl::string_view data) {
          archive.append(data.data(), data.size());
          return absl::OkStatus();
        },
        {});
    if (!s.ok()) return s;
    return archive;
  }

  absl::Status ImportArchive(const std::string& ns, const std::string& archive,
                             const TransferImportOptions& options) {
    return client_.ImportBytes(Call(ns), archive, options);
  }

  // The leases of `ns`: none once a transfer is done (its own, or the
  // client's, are deleted).
  size_t Leases(const std::string& ns) { return leases_.List(ns, {})->size(); }

  ServerFixture f_;
  RemoteContentStore content_;
  RemoteImageStore images_;
  RemoteLeaseStore leases_;
  TransferClient client_;
  absl::Mutex mu_;
  std::vector<TransferProgress> events_ ABSL_GUARDED_BY(mu_);
};

TEST_F(TransferTest, ExportThenImportElsewhere) {
  store::Descriptor target = AddImage("default");
  auto archive = ExportArchive("default", {kName});
  ASSERT_TRUE(archive.ok()) << archive.status();
  EXPECT_NE(archive->find("index.json"), std::string::npos);
  EXPECT_NE(archive->find("oci-layout"), std::string::npos);
  EXPECT_EQ(Events(), (std::vector<std::string>{"Exporting", "Completed export"}));

  // Bigger than one window of containerd's client: the grants are honoured.
  ASSERT_GT(archive->size(), size_t{64 << 10});
  // Under a lease of the client's, as ctr 2.x imports.
  absl::Status imported_under_lease = client_.WithLease(Call("other"), [&](const TransferCall& c) {
    EXPECT_EQ(Leases("other"), 1u);  // the client's
    return client_.ImportBytes(c, *archive, {});
  });
  ASSERT_TRUE(imported_under_lease.ok()) << imported_under_lease;
  auto imported = images_.Get("other", kName);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->target.digest, target.digest);
  EXPECT_EQ(Events(), (std::vector<std::string>{"Importing", std::string("saved ") + kName,
                                                "Completed import"}));
  // The blobs came along, and the client's lease is gone.
  auto info = content_.Info("other", target.digest);
  EXPECT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(Leases("other"), 0u);
}

TEST_F(TransferTest, ImportNamesAsContainerd2) {
  store::Descriptor target = AddImage("default");
  auto archive = ExportArchive("default", {kName});
  ASSERT_TRUE(archive.ok()) << archive.status();

  // A base name that may not be overwritten drops names outside it...
  TransferImportOptions options;
  options.base_name = "example.com/mine";
  ASSERT_TRUE(ImportArchive("a", *archive, options).ok());
  EXPECT_TRUE(absl::IsNotFound(images_.Get("a", kName).status()));
  // ...but --digests names the entry after the base, with labels.
  options.digests = true;
  options.labels = {{"team", "blue"}};
  ASSERT_TRUE(ImportArchive("a", *archive, options).ok());
  auto digest_named = images_.Get("a", "example.com/mine@" + target.digest);
  ASSERT_TRUE(digest_named.ok()) << digest_named.status();
  EXPECT_EQ(digest_named->labels.at("team"), "blue");
  // Importing again replaces the target of the existing record.
  ASSERT_TRUE(ImportArchive("a", *archive, options).ok());
  Events();
  EXPECT_EQ(images_.List("a", {})->size(), 1u);
  // Each import took a temporary lease of imaged's own and deleted it.
  EXPECT_EQ(Leases("a"), 0u);
}

TEST_F(TransferTest, ExportOfAMissingImageFailsTheStreamToo) {
  std::string archive;
  absl::Status s = client_.Export(
      Call("default"), {"docker.io/library/none:1"},
      [&](absl::string_view data) {
        archive.append(data.data(), data.size());
        return absl::OkStatus();
      },
      {});
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_TRUE(archive.empty());
}

TEST_F(TransferTest, ImportOfNotAnArchiveStoresNothing) {
  absl::Status s = ImportArchive("default", std::string(100000, 'x'), {});
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(images_.List("default", {})->empty());
}

TEST_F(TransferTest, RefusesWhatItDoesNotServe) {
  ttypes::ImageStore is;
  is.set_name(kName);
  ttypes::ImageImportStream iis;
  iis.set_stream("no-such-stream");
  const std::string store_url = "containerd.types.transfer.ImageStore";
  // Push (store -> registry) and tag (store -> store) are not served.
  absl::Status s = client_.RawTransfer(Call("default"), store_url, is.SerializeAsString(),
                                       "containerd.types.transfer.OCIRegistry", "");
  EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
  EXPECT_NE(s.message().find("OCIRegistry"), absl::string_view::npos) << s;
  s = client_.RawTransfer(Call("default"), store_url, "", store_url, "");
  EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
  // A stream that was never opened.
  ttypes::ImageStore prefixed;
  auto* ref = prefixed.add_extra_references();
  ref->set_name("import");
  ref->set_is_prefix(true);
  s = client_.RawTransfer(Call("default"), "containerd.types.transfer.ImageImportStream",
                          iis.SerializeAsString(), store_url, prefixed.SerializeAsString());
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  // Bytes that do not parse, with the type URL protobuf's Any writes.
  s = client_.RawTransfer(Call("default"), "type.googleapis.com/containerd.types.transfer.ImageStore",
                          "\xff\xff", "containerd.types.transfer.ImageExportStream", "");
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // Too many platforms.
  ttypes::ImageExportStream many;
  many.set_stream("x");
  for (int i = 0; i < 65; ++i) many.add_platforms()->set_os("linux");
  s = client_.RawTransfer(Call("default"), store_url, is.SerializeAsString(),
                          "containerd.types.transfer.ImageExportStream", many.SerializeAsString());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  // No namespace.
  s = client_.RawTransfer(Call(""), store_url, "", store_url, "");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;  // containerd: "namespace is required"
  Events();
}

TEST_F(TransferTest, PullWithoutARegistryIsUnavailable) {
  TransferPullOptions options;
  options.name = "127.0.0.1:1/app:1";
  options.plain_http = true;
  absl::Status s = client_.Pull(Call("default"), "127.0.0.1:1/app:1", options);
  EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  std::vector<std::string> events = Events();
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0], "Resolving from OCI Registry (127.0.0.1:1/app:1)");
  EXPECT_TRUE(images_.List("default", {})->empty());
}

TEST_F(TransferTest, AtMostSixteenTransfersRunAtOnce) {
  // Sixteen imports whose archives never come (until released) hold every slot.
  absl::Notification release;
  std::vector<std::thread> imports;
  for (int i = 0; i < 16; ++i) {
    imports.emplace_back([&] {
      TransferCall call;
      call.ns = "default";
      client_.Import(
              call,
              [&](char*, size_t) -> absl::StatusOr<size_t> {
                release.WaitForNotification();
                return 0;
              },
              {})
          .IgnoreError();
    });
  }
  TransferCall call;
  call.ns = "default";
  absl::Status s;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    s = client_.RawTransfer(call, "containerd.types.transfer.ImageStore", "",
                            "containerd.types.transfer.ImageStore", "");
  } while (!absl::IsResourceExhausted(s) && absl::Now() < deadline);
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  release.Notify();
  for (std::thread& t : imports) t.join();
  // The slots are free again.
  s = client_.RawTransfer(call, "containerd.types.transfer.ImageStore", "",
                          "containerd.types.transfer.ImageStore", "");
  EXPECT_TRUE(absl::IsUnimplemented(s)) << s;
}

TEST(StreamingTest, StreamIdsAreUniquePerNamespace) {
  ServerFixture f;
  auto stub = streamingpb::Streaming::NewStub(f.channel());
  auto open = [&](grpc::ClientContext* ctx, const std::string& ns, const std::string& id,
                  bool* acked) {
    ctx->AddMetadata("containerd-namespace", ns);
    auto rw = stub->Stream(ctx);
    streamingpb::StreamInit init;
    init.set_id(id);
    google::protobuf::Any any;
    any.set_type_url("containerd.services.streaming.v1.StreamInit");
    init.SerializeToString(any.mutable_value());
    rw->Write(any);
    google::protobuf::Any ack;
    *acked = rw->Read(&ack) && ack.type_url() == "google.protobuf.Empty";
    return rw;
  };
  grpc::ClientContext c1, c2, c3;
  bool ok1, ok2, ok3;
  auto s1 = open(&c1, "default", "progress-1", &ok1);
  auto s2 = open(&c2, "default", "progress-1", &ok2);
  auto s3 = open(&c3, "other", "progress-1", &ok3);
  EXPECT_TRUE(ok1);
  EXPECT_FALSE(ok2);
  EXPECT_EQ(s2->Finish().error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_TRUE(ok3);
  c1.TryCancel();
  c3.TryCancel();
  s1->Finish();
  s3->Finish();

  // A first message that is not a StreamInit.
  grpc::ClientContext c4;
  auto s4 = stub->Stream(&c4);
  google::protobuf::Any junk;
  junk.set_type_url("containerd.types.transfer.Data");
  s4->Write(junk);
  google::protobuf::Any ack;
  EXPECT_FALSE(s4->Read(&ack));
  EXPECT_EQ(s4->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace imaged::plugin
