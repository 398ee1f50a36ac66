// Every RPC once more, over the wire, against what containerd and kubelet
// expect of it (issue 13): a table of (method, input, expected code), each row
// run against one server holding a known state, and after each row that must
// fail, the state is checked unchanged (content, images and leases of both
// namespaces, byte for byte). Error messages stay short whatever the input.
#include <grpcpp/create_channel.h>

#include <functional>
#include <limits>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "api/containerd/services/images/v1/images.grpc.pb.h"
#include "api/containerd/services/leases/v1/leases.grpc.pb.h"
#include "api/imaged/v1/admin.grpc.pb.h"
#include "api/runtime/v1/api.grpc.pb.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/images_client.h"
#include "plugin/leases_client.h"
#include "plugin/test_server.h"
#include "store/digest.h"
#include "store/limits.h"

namespace imaged::plugin {
namespace {

namespace contentpb = ::containerd::services::content::v1;
namespace imagespb = ::containerd::services::images::v1;
namespace leasespb = ::containerd::services::leases::v1;
namespace eventspb = ::containerd::services::events::v1;
namespace adminpb = ::imaged::v1;
namespace cripb = ::runtime::v1;
using Code = grpc::StatusCode;

constexpr char kBlob[] = "wire contract blob";
const std::string kDigest = store::Sha256::Of(kBlob);
const std::string kUnknown = "sha256:" + std::string(64, '0');
const std::string kHuge(8 << 20, 'h');  // 8 MiB

// Who asks: a namespace header, none, or an empty one.
enum class Ns { kDefault, kK8s, kNone, kEmpty, kBad, kLong };

std::unique_ptr<grpc::ClientContext> Ctx(Ns ns) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  switch (ns) {
    case Ns::kDefault: ctx->AddMetadata("containerd-namespace", "default"); break;
    case Ns::kK8s: ctx->AddMetadata("containerd-namespace", "k8s.io"); break;
    case Ns::kNone: break;
    case Ns::kEmpty: ctx->AddMetadata("containerd-namespace", ""); break;
    case Ns::kBad: ctx->AddMetadata("containerd-namespace", "a..b"); break;
    case Ns::kLong: ctx->AddMetadata("containerd-namespace", std::string(77, 'n')); break;
  }
  return ctx;
}

struct Row {
  std::string name;
  std::function<grpc::Status()> call;
  std::set<Code> want;
};

class WireContractTest : public ::testing::Test {
 protected:
  void SetUp() override {
    channel_ = fixture_.channel();
    content_ = contentpb::Content::NewStub(channel_);
    images_ = imagespb::Images::NewStub(channel_);
    leases_ = leasespb::Leases::NewStub(channel_);
    events_ = eventspb::Events::NewStub(channel_);
    admin_ = adminpb::Admin::NewStub(channel_);
    cri_ = cripb::ImageService::NewStub(channel_);
    // The known state: a blob in both namespaces, an image on it in k8s.io
    // (a CRI image too), a lease holding the blob in default.
    RemoteContentStore content(channel_);
    for (const char* ns : {"default", "k8s.io"}) {
      auto w = content.Writer(ns, "seed", 0, "");
      ASSERT_TRUE(w.ok()) << w.status();
      ASSERT_TRUE((*w)->Write(kBlob).ok());
      ASSERT_TRUE((*w)->Commit(sizeof(kBlob) - 1, kDigest, {{"keep", "me"}}).ok());
    }
    RemoteLeaseStore leases(channel_);
    store::Lease lease;
    lease.id = "held";
    ASSERT_TRUE(leases.Create("default", lease).ok());
    ASSERT_TRUE(leases.AddResource("default", "held", {kDigest, "content"}).ok());
  }

  // Everything a failed call must leave as it was.
  std::string State() {
    std::string out;
    RemoteContentStore content(channel_);
    RemoteImageStore images(channel_);
    RemoteLeaseStore leases(channel_);
    for (const char* ns : {"default", "k8s.io"}) {
      EXPECT_TRUE(content
                      .Walk(ns, {},
                            [&](const store::ContentInfo& info) {
                              absl::StrAppend(&out, ns, " blob ", info.digest, " ", info.size);
                              for (const auto& [k, v] : info.labels) absl::StrAppend(&out, " ", k, "=", v);
                              out += "\n";
                              return absl::OkStatus();
                            })
                      .ok());
      auto list = images.List(ns, {});
      EXPECT_TRUE(list.ok());
      for (const store::Image& i : *list) {
        absl::StrAppend(&out, ns, " image ", i.name, " ", i.target.digest, "\n");
      }
      auto ls = leases.List(ns, {});
      EXPECT_TRUE(ls.ok());
      for (const store::Lease& l : *ls) {
        absl::StrAppend(&out, ns, " lease ", l.id, "\n");
        auto res = leases.ListResources(ns, l.id);
        EXPECT_TRUE(res.ok());
        for (const auto& r : *res) absl::StrAppend(&out, "  ", r.type, " ", r.id, "\n");
      }
    }
    return out;
  }

  grpc::Status ContentInfo(Ns ns, const std::string& digest) {
    contentpb::InfoRequest req;
    req.set_digest(digest);
    contentpb::InfoResponse resp;
    return content_->Info(Ctx(ns).get(), req, &resp);
  }
  grpc::Status ContentUpdate(const std::string& digest, store::Labels labels,
                             std::vector<std::string> paths) {
    contentpb::UpdateRequest req;
    req.mutable_info()->set_digest(digest);
    req.mutable_info()->mutable_labels()->insert(labels.begin(), labels.end());
    for (const std::string& p : paths) req.mutable_update_mask()->add_paths(p);
    contentpb::UpdateResponse resp;
    return content_->Update(Ctx(Ns::kDefault).get(), req, &resp);
  }
  grpc::Status Read(int64_t offset, int64_t size, const std::string& digest = kDigest) {
    contentpb::ReadContentRequest req;
    req.set_digest(digest);
    req.set_offset(offset);
    req.set_size(size);
    auto ctx = Ctx(Ns::kDefault);
    auto reader = content_->Read(ctx.get(), req);
    contentpb::ReadContentResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  }
  grpc::Status ContentList(std::vector<std::string> filters) {
    contentpb::ListContentRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    auto ctx = Ctx(Ns::kDefault);
    auto reader = content_->List(ctx.get(), req);
    contentpb::ListContentResponse resp;
    while (reader->Read(&resp)) {
    }
    return reader->Finish();
  }
  grpc::Status ListStatuses(std::vector<std::string> filters) {
    contentpb::ListStatusesRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    contentpb::ListStatusesResponse resp;
    return content_->ListStatuses(Ctx(Ns::kDefault).get(), req, &resp);
  }
  // One Write stream: the first message, then the stream's status.
  grpc::Status Write(const std::string& ref, int64_t total = 0) {
    auto ctx = Ctx(Ns::kDefault);
    auto stream = content_->Write(ctx.get());
    contentpb::WriteContentRequest req;
    req.set_action(contentpb::STAT);
    req.set_ref(ref);
    req.set_total(total);
    stream->Write(req);
    stream->WritesDone();
    contentpb::WriteContentResponse resp;
    while (stream->Read(&resp)) {
    }
    return stream->Finish();
  }
  grpc::Status ImageCreate(Ns ns, const std::string& name, const std::string& digest, int64_t size,
                           const std::string& media_type, store::Labels labels = {}) {
    imagespb::CreateImageRequest req;
    req.mutable_image()->set_name(name);
    req.mutable_image()->mutable_target()->set_digest(digest);
    req.mutable_image()->mutable_target()->set_size(size);
    req.mutable_image()->mutable_target()->set_media_type(media_type);
    req.mutable_image()->mutable_labels()->insert(labels.begin(), labels.end());
    imagespb::CreateImageResponse resp;
    return images_->Create(Ctx(ns).get(), req, &resp);
  }
  grpc::Status ImageGet(Ns ns, const std::string& name) {
    imagespb::GetImageRequest req;
    req.set_name(name);
    imagespb::GetImageResponse resp;
    return images_->Get(Ctx(ns).get(), req, &resp);
  }
  grpc::Status ImageUpdate(const std::string& name, std::vector<std::string> paths) {
    imagespb::UpdateImageRequest req;
    req.mutable_image()->set_name(name);
    req.mutable_image()->mutable_target()->set_digest(kDigest);
    req.mutable_image()->mutable_target()->set_size(sizeof(kBlob) - 1);
    req.mutable_image()->mutable_target()->set_media_type("application/vnd.oci.image.manifest.v1+json");
    for (const std::string& p : paths) req.mutable_update_mask()->add_paths(p);
    imagespb::UpdateImageResponse resp;
    return images_->Update(Ctx(Ns::kK8s).get(), req, &resp);
  }
  // containerd 2.x's source_date_epoch on an otherwise valid Create.
  grpc::Status ImageCreateAt(int64_t seconds, int32_t nanos) {
    imagespb::CreateImageRequest req;
    req.mutable_image()->set_name("a:1");
    req.mutable_image()->mutable_target()->set_digest(kDigest);
    req.mutable_image()->mutable_target()->set_size(sizeof(kBlob) - 1);
    req.mutable_image()->mutable_target()->set_media_type("application/vnd.oci.image.manifest.v1+json");
    req.mutable_source_date_epoch()->set_seconds(seconds);
    req.mutable_source_date_epoch()->set_nanos(nanos);
    imagespb::CreateImageResponse resp;
    return images_->Create(Ctx(Ns::kK8s).get(), req, &resp);
  }
  // `target_digest` non-empty: containerd 2.x's guarded delete.
  grpc::Status ImageDelete(const std::string& name, const std::string& target_digest = "") {
    imagespb::DeleteImageRequest req;
    req.set_name(name);
    if (!target_digest.empty()) req.mutable_target()->set_digest(target_digest);
    google::protobuf::Empty resp;
    return images_->Delete(Ctx(Ns::kK8s).get(), req, &resp);
  }
  grpc::Status ImageList(std::vector<std::string> filters) {
    imagespb::ListImagesRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    imagespb::ListImagesResponse resp;
    return images_->List(Ctx(Ns::kK8s).get(), req, &resp);
  }
  grpc::Status LeaseCreate(const std::string& id, store::Labels labels = {}) {
    leasespb::CreateRequest req;
    req.set_id(id);
    req.mutable_labels()->insert(labels.begin(), labels.end());
    leasespb::CreateResponse resp;
    return leases_->Create(Ctx(Ns::kDefault).get(), req, &resp);
  }
  grpc::Status LeaseDelete(const std::string& id) {
    leasespb::DeleteRequest req;
    req.set_id(id);
    google::protobuf::Empty resp;
    return leases_->Delete(Ctx(Ns::kDefault).get(), req, &resp);
  }
  grpc::Status AddResource(const std::string& lease, const std::string& id, const std::string& type) {
    leasespb::AddResourceRequest req;
    req.set_id(lease);
    req.mutable_resource()->set_id(id);
    req.mutable_resource()->set_type(type);
    google::protobuf::Empty resp;
    return leases_->AddResource(Ctx(Ns::kDefault).get(), req, &resp);
  }
  grpc::Status ListResources(const std::string& lease) {
    leasespb::ListResourcesRequest req;
    req.set_id(lease);
    leasespb::ListResourcesResponse resp;
    return leases_->ListResources(Ctx(Ns::kDefault).get(), req, &resp);
  }
  grpc::Status LeaseList(std::vector<std::string> filters) {
    leasespb::ListRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    leasespb::ListResponse resp;
    return leases_->List(Ctx(Ns::kDefault).get(), req, &resp);
  }
  grpc::Status Publish(Ns ns, const std::string& topic, bool with_event = true) {
    eventspb::PublishRequest req;
    req.set_topic(topic);
    if (with_event) req.mutable_event()->set_type_url("x");
    google::protobuf::Empty resp;
    return events_->Publish(Ctx(ns).get(), req, &resp);
  }
  grpc::Status Subscribe(std::vector<std::string> filters) {
    eventspb::SubscribeRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    auto ctx = Ctx(Ns::kNone);
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    auto reader = events_->Subscribe(ctx.get(), req);
    eventspb::Envelope env;
    reader->Read(&env);  // a bad filter ends the stream at once
    return reader->Finish();
  }
  grpc::Status ImageStatus(const std::string& ref, bool* present = nullptr) {
    cripb::ImageStatusRequest req;
    req.mutable_image()->set_image(ref);
    cripb::ImageStatusResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = cri_->ImageStatus(&ctx, req, &resp);
    if (present != nullptr) *present = resp.has_image();
    return s;
  }
  grpc::Status RemoveImage(const std::string& ref) {
    cripb::RemoveImageRequest req;
    req.mutable_image()->set_image(ref);
    cripb::RemoveImageResponse resp;
    grpc::ClientContext ctx;
    return cri_->RemoveImage(&ctx, req, &resp);
  }
  grpc::Status PullImage(const std::string& ref) {
    cripb::PullImageRequest req;
    req.mutable_image()->set_image(ref);
    cripb::PullImageResponse resp;
    grpc::ClientContext ctx;
    return cri_->PullImage(&ctx, req, &resp);
  }
  grpc::Status ListImages(const std::string& filter) {
    cripb::ListImagesRequest req;
    if (!filter.empty()) req.mutable_filter()->mutable_image()->set_image(filter);
    cripb::ListImagesResponse resp;
    grpc::ClientContext ctx;
    return cri_->ListImages(&ctx, req, &resp);
  }
  grpc::Status Gc(std::vector<std::string> namespaces, adminpb::GarbageCollectResponse* out = nullptr) {
    adminpb::GarbageCollectRequest req;
    for (const std::string& ns : namespaces) req.add_namespaces(ns);
    adminpb::GarbageCollectResponse resp;
    grpc::ClientContext ctx;
    grpc::Status s = admin_->GarbageCollect(&ctx, req, &resp);
    if (out != nullptr) *out = resp;
    return s;
  }
  grpc::Status Raw(const std::string& method, const std::string& bytes, Ns ns = Ns::kDefault) {
    return RawUnaryCall(channel_, method, bytes, nullptr, Ctx(ns).get());
  }

  ServerFixture fixture_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<contentpb::Content::Stub> content_;
  std::unique_ptr<imagespb::Images::Stub> images_;
  std::unique_ptr<leasespb::Leases::Stub> leases_;
  std::unique_ptr<eventspb::Events::Stub> events_;
  std::unique_ptr<adminpb::Admin::Stub> admin_;
  std::unique_ptr<cripb::ImageService::Stub> cri_;
};

std::vector<std::string> Many(size_t n, const std::string& each) { return std::vector<std::string>(n, each); }

std::vector<std::string> Distinct(size_t n, const std::string& prefix) {
  std::vector<std::string> out;
  for (size_t i = 0; i < n; ++i) out.push_back(absl::StrCat(prefix, i));
  return out;
}

std::vector<std::string> LabelPaths(size_t n) { return Distinct(n, "labels.k"); }

TEST_F(WireContractTest, EveryRpcAnswersWithTheExpectedCodeAndFailuresChangeNothing) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  const std::string manifest_type = "application/vnd.oci.image.manifest.v1+json";
  const int64_t size = sizeof(kBlob) - 1;
  store::Labels big_total;
  for (int i = 0; i < 2200; ++i) big_total[absl::StrCat("k", i)] = std::string(4000, 'v');
  const std::vector<Row> rows = {
      // Content: namespaces.
      {"Content.Info in default", [&] { return ContentInfo(Ns::kDefault, kDigest); }, {Code::OK}},
      {"Content.Info without a namespace: the proxy's, empty", [&] { return ContentInfo(Ns::kNone, kDigest); }, {Code::NOT_FOUND}},
      {"Content.Info with an empty namespace header", [&] { return ContentInfo(Ns::kEmpty, kDigest); }, {Code::FAILED_PRECONDITION}},
      {"Content.Info with a malformed namespace", [&] { return ContentInfo(Ns::kBad, kDigest); }, {Code::INVALID_ARGUMENT}},
      {"Content.Info with a 77-byte namespace", [&] { return ContentInfo(Ns::kLong, kDigest); }, {Code::INVALID_ARGUMENT}},
      {"Content.Info of a malformed digest", [&] { return ContentInfo(Ns::kDefault, "sha256:xyz"); }, {Code::INVALID_ARGUMENT}},
      {"Content.Info of an 8 MiB digest", [&] { return ContentInfo(Ns::kDefault, kHuge); }, {Code::INVALID_ARGUMENT}},
      {"Content.Info of an unknown digest", [&] { return ContentInfo(Ns::kDefault, kUnknown); }, {Code::NOT_FOUND}},
      // Content: Update.
      {"Content.Update of size", [&] { return ContentUpdate(kDigest, {}, {"size"}); }, {Code::INVALID_ARGUMENT}},
      {"Content.Update with a 4097-byte label", [&] { return ContentUpdate(kDigest, {{"k", std::string(4096, 'v')}}, {"labels.k"}); }, {Code::INVALID_ARGUMENT}},
      {"Content.Update with 8.8 MB of labels", [&] { return ContentUpdate(kDigest, big_total, {"labels"}); }, {Code::INVALID_ARGUMENT}},
      {"Content.Update with 131,073 field paths", [&] { return ContentUpdate(kDigest, {}, LabelPaths(store::kMaxFieldPaths + 1)); }, {Code::INVALID_ARGUMENT}},
      {"Content.Update of an unknown digest", [&] { return ContentUpdate(kUnknown, {{"a", "b"}}, {"labels.a"}); }, {Code::NOT_FOUND}},
      // Content: Delete, Read.
      {"Content.Delete of a malformed digest", [&] {
         contentpb::DeleteContentRequest req;
         req.set_digest("md5:abc");
         google::protobuf::Empty resp;
         return content_->Delete(Ctx(Ns::kDefault).get(), req, &resp);
       }, {Code::INVALID_ARGUMENT}},
      {"Content.Delete of an unknown digest", [&] {
         contentpb::DeleteContentRequest req;
         req.set_digest(kUnknown);
         google::protobuf::Empty resp;
         return content_->Delete(Ctx(Ns::kDefault).get(), req, &resp);
       }, {Code::NOT_FOUND}},
      {"Content.Read of an unknown digest", [&] { return Read(0, 0, kUnknown); }, {Code::NOT_FOUND}},
      {"Content.Read past the end", [&] { return Read(size + 1, 0); }, {Code::OUT_OF_RANGE}},
      {"Content.Read at INT64_MAX", [&] { return Read(kMax, 1); }, {Code::OUT_OF_RANGE}},
      {"Content.Read offset 1 size INT64_MAX", [&] { return Read(1, kMax); }, {Code::OK}},
      {"Content.Read from a negative offset", [&] { return Read(-5, 3); }, {Code::OK}},
      {"Content.Read with a negative size", [&] { return Read(2, -1); }, {Code::OK}},
      // Content: ingests and lists.
      {"Content.Status of an unknown ref", [&] {
         contentpb::StatusRequest req;
         req.set_ref("nobody");
         contentpb::StatusResponse resp;
         return content_->Status(Ctx(Ns::kDefault).get(), req, &resp);
       }, {Code::NOT_FOUND}},
      {"Content.Abort of an unknown ref", [&] {
         contentpb::AbortRequest req;
         req.set_ref("nobody");
         google::protobuf::Empty resp;
         return content_->Abort(Ctx(Ns::kDefault).get(), req, &resp);
       }, {Code::NOT_FOUND}},
      {"Content.Write without a ref", [&] { return Write(""); }, {Code::INVALID_ARGUMENT}},
      {"Content.Write with a 257-byte ref", [&] { return Write(std::string(257, 'r')); }, {Code::INVALID_ARGUMENT}},
      {"Content.Write with an 8 MiB ref", [&] { return Write(std::string(8 << 20, 'r')); }, {Code::INVALID_ARGUMENT}},
      {"Content.Write with a negative total", [&] { return Write("neg", -1); }, {Code::INVALID_ARGUMENT}},
      {"Content.ListStatuses with a malformed filter", [&] { return ListStatuses({"ref=="}); }, {Code::INVALID_ARGUMENT}},
      {"Content.ListStatuses with 65 filters", [&] { return ListStatuses(Many(65, "ref==a")); }, {Code::INVALID_ARGUMENT}},
      {"Content.List with a 4097-byte filter", [&] { return ContentList({"labels.a==" + std::string(4087, 'v')}); }, {Code::INVALID_ARGUMENT}},
      {"Content.List with 64 filters", [&] { return ContentList(Many(64, "labels.keep==me")); }, {Code::OK}},
      {"Content.Info of a body that does not parse", [&] { return Raw("/containerd.services.content.v1.Content/Info", "\xff\xff\xff"); }, {Code::INTERNAL, Code::INVALID_ARGUMENT}},
      // Images.
      {"Images.Get without a namespace", [&] { return ImageGet(Ns::kNone, "x"); }, {Code::FAILED_PRECONDITION}},
      {"Images.Get with an empty namespace header", [&] { return ImageGet(Ns::kEmpty, "x"); }, {Code::FAILED_PRECONDITION}},
      {"Images.Get of an unknown image", [&] { return ImageGet(Ns::kK8s, "docker.io/library/none:1"); }, {Code::NOT_FOUND}},
      {"Images.Get of an 8 MiB name", [&] { return ImageGet(Ns::kK8s, kHuge); }, {Code::NOT_FOUND}},
      {"Images.Create with an empty name", [&] { return ImageCreate(Ns::kK8s, "", kDigest, size, manifest_type); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with a 513-byte name", [&] { return ImageCreate(Ns::kK8s, std::string(513, 'n'), kDigest, size, manifest_type); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with a 5 MiB name", [&] { return ImageCreate(Ns::kK8s, std::string(5 << 20, 'n'), kDigest, size, manifest_type); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with a malformed target digest", [&] { return ImageCreate(Ns::kK8s, "a:1", "sha256:1", size, manifest_type); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with target size 0", [&] { return ImageCreate(Ns::kK8s, "a:1", kDigest, 0, manifest_type); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create without a media type", [&] { return ImageCreate(Ns::kK8s, "a:1", kDigest, size, ""); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with a 4097-byte label", [&] { return ImageCreate(Ns::kK8s, "a:1", kDigest, size, manifest_type, {{"k", std::string(4096, 'v')}}); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with 8.8 MB of labels", [&] { return ImageCreate(Ns::kK8s, "a:1", kDigest, size, manifest_type, big_total); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create without a namespace", [&] { return ImageCreate(Ns::kNone, "a:1", kDigest, size, manifest_type); }, {Code::FAILED_PRECONDITION}},
      {"Images.Update of an unknown image", [&] { return ImageUpdate("docker.io/library/none:1", {}); }, {Code::NOT_FOUND}},
      {"Images.Update with 131,073 field paths", [&] { return ImageUpdate("docker.io/library/none:1", LabelPaths(store::kMaxFieldPaths + 1)); }, {Code::INVALID_ARGUMENT}},
      {"Images.Delete of an unknown image", [&] { return ImageDelete("docker.io/library/none:1"); }, {Code::NOT_FOUND}},
      {"Images.Delete of an unknown image guarded by a target (2.x)", [&] { return ImageDelete("docker.io/library/none:1", kDigest); }, {Code::NOT_FOUND}},
      {"Images.Create with source_date_epoch after 2262 (2.x)", [&] { return ImageCreateAt(253402300799, 0); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create with negative source_date_epoch nanos (2.x)", [&] { return ImageCreateAt(1700000000, -1); }, {Code::INVALID_ARGUMENT}},
      {"Images.List with a malformed filter", [&] { return ImageList({"name=="}); }, {Code::INVALID_ARGUMENT}},
      {"Images.List with 65 filters", [&] { return ImageList(Many(65, "name==a")); }, {Code::INVALID_ARGUMENT}},
      {"Images.Create of a body that does not parse", [&] { return Raw("/containerd.services.images.v1.Images/Create", "\x0a\xff", Ns::kK8s); }, {Code::INTERNAL, Code::INVALID_ARGUMENT}},
      // Leases.
      {"Leases.Create of an existing id", [&] { return LeaseCreate("held"); }, {Code::ALREADY_EXISTS}},
      {"Leases.Create with a 257-byte id", [&] { return LeaseCreate(std::string(257, 'l')); }, {Code::INVALID_ARGUMENT}},
      {"Leases.Create with a 1 MiB id", [&] { return LeaseCreate(std::string(1 << 20, 'l')); }, {Code::INVALID_ARGUMENT}},
      {"Leases.Create with a 4097-byte label", [&] { return LeaseCreate("x", {{"k", std::string(4096, 'v')}}); }, {Code::INVALID_ARGUMENT}},
      {"Leases.Delete of an unknown lease", [&] { return LeaseDelete("nobody"); }, {Code::NOT_FOUND}},
      {"Leases.AddResource to an unknown lease", [&] { return AddResource("nobody", kDigest, "content"); }, {Code::NOT_FOUND}},
      {"Leases.AddResource of an unknown type", [&] { return AddResource("held", "x", "bogus"); }, {Code::UNIMPLEMENTED}},
      {"Leases.AddResource of a malformed digest", [&] { return AddResource("held", "sha256:1", "content"); }, {Code::INVALID_ARGUMENT}},
      {"Leases.AddResource with a 513-byte id", [&] { return AddResource("held", std::string(513, 'i'), "ingests"); }, {Code::INVALID_ARGUMENT}},
      {"Leases.ListResources of an unknown lease", [&] { return ListResources("nobody"); }, {Code::NOT_FOUND}},
      {"Leases.List with a malformed filter", [&] { return LeaseList({"id=="}); }, {Code::INVALID_ARGUMENT}},
      {"Leases.List with 65 filters", [&] { return LeaseList(Many(65, "id==a")); }, {Code::INVALID_ARGUMENT}},
      // Events.
      {"Events.Publish without a namespace", [&] { return Publish(Ns::kNone, "/x/y"); }, {Code::FAILED_PRECONDITION}},
      {"Events.Publish of a malformed topic", [&] { return Publish(Ns::kDefault, "noslash"); }, {Code::INVALID_ARGUMENT}},
      {"Events.Publish without an event", [&] { return Publish(Ns::kDefault, "/x/y", false); }, {Code::INVALID_ARGUMENT}},
      {"Events.Subscribe with a malformed filter", [&] { return Subscribe({"topic=="}); }, {Code::INVALID_ARGUMENT}},
      {"Events.Subscribe with 65 filters", [&] { return Subscribe(Many(65, "topic==\"/a\"")); }, {Code::INVALID_ARGUMENT}},
      // CRI ImageService, as kubelet and containerd's CRI expect.
      {"CRI ImageStatus of an empty reference", [&] { return ImageStatus(""); }, {Code::OK}},
      {"CRI ImageStatus of an unknown image", [&] { return ImageStatus("busybox"); }, {Code::OK}},
      {"CRI ImageStatus of a 513-byte reference", [&] { return ImageStatus(std::string(513, 'r')); }, {Code::INVALID_ARGUMENT}},
      {"CRI ImageStatus of a body that does not parse", [&] { return Raw("/runtime.v1.ImageService/ImageStatus", "\xff\xff"); }, {Code::INVALID_ARGUMENT}},
      {"CRI RemoveImage of an empty reference", [&] { return RemoveImage(""); }, {Code::OK}},
      {"CRI RemoveImage of an unknown image", [&] { return RemoveImage("busybox"); }, {Code::OK}},
      {"CRI RemoveImage of an 8 MiB reference", [&] { return RemoveImage(kHuge); }, {Code::INVALID_ARGUMENT}},
      {"CRI PullImage of an empty reference", [&] { return PullImage(""); }, {Code::INVALID_ARGUMENT}},
      {"CRI PullImage of an 8 MiB reference", [&] { return PullImage(kHuge); }, {Code::INVALID_ARGUMENT}},
      {"CRI ListImages filtered to an unknown image", [&] { return ListImages("busybox"); }, {Code::OK}},
      {"CRI ListImages of a body that does not parse", [&] { return Raw("/runtime.v1.ImageService/ListImages", "\xff\xff"); }, {Code::INVALID_ARGUMENT}},
      {"CRI ImageFsInfo", [&] {
         cripb::ImageFsInfoResponse resp;
         grpc::ClientContext ctx;
         return cri_->ImageFsInfo(&ctx, cripb::ImageFsInfoRequest(), &resp);
       }, {Code::OK}},
      // Admin.
      {"Admin.GarbageCollect of a malformed namespace", [&] { return Gc({"a..b"}); }, {Code::INVALID_ARGUMENT}},
      {"Admin.GarbageCollect of 257 namespaces", [&] { return Gc(Distinct(257, "ns-")); }, {Code::INVALID_ARGUMENT}},
      {"Admin.GarbageCollect of a 1 MiB namespace", [&] { return Gc({std::string(1 << 20, 'n')}); }, {Code::INVALID_ARGUMENT}},
  };
  ASSERT_GE(rows.size(), 60u);
  const std::string before = State();
  ASSERT_NE(before.find("lease held"), std::string::npos) << before;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    grpc::Status s = row.call();
    EXPECT_TRUE(row.want.count(s.error_code())) << "got code " << s.error_code() << ": "
                                                << s.error_message().substr(0, 300);
    // Whatever the input, the answer quotes little of it.
    EXPECT_LE(s.error_message().size(), store::kMaxErrorMessage);
    if (!s.ok()) {
      EXPECT_EQ(State(), before);
    }
  }
}

// issue 13: Admin.GarbageCollect of one namespace named a thousand times was
// a thousand passes; it is one.
TEST_F(WireContractTest, GarbageCollectOfOneNamespaceRepeatedIsOnePass) {
  adminpb::GarbageCollectResponse resp;
  ASSERT_TRUE(Gc(Many(1000, "default"), &resp).ok());
  EXPECT_EQ(resp.namespaces(), 1);
  ASSERT_TRUE(Gc({"default", "k8s.io", "default", "", "k8s.io"}, &resp).ok());
  EXPECT_EQ(resp.namespaces(), 2);
}

}  // namespace
}  // namespace imaged::plugin
