// The Leases service over the wire: a grpc::Server on a unix socket in a temp
// dir serving LeasesService over a RocksDbLeaseStore, driven by the generated
// stub as ctr would drive it.
#include "plugin/leases_service.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server.h>
#include <grpcpp/server_builder.h>
#include <stdlib.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/clock.h"
#include "store/files.h"
#include "store/rocksdb_lease_store.h"
#include "store/metadata_db.h"

namespace imaged::plugin {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

const std::string kDigest = absl::StrCat("sha256:", std::string(64, 'b'));

class LeasesServiceTest : public ::testing::Test {
 protected:
  LeasesServiceTest() {
    // Under /tmp: a unix socket path must stay under 108 bytes.
    dir_ = "/tmp/imaged-leases-XXXXXX";
    EXPECT_NE(::mkdtemp(dir_.data()), nullptr);
    auto db = store::MetadataDb::Open(dir_ + "/meta");
    EXPECT_TRUE(db.ok()) << db.status();
    db_ = *std::move(db);
    // The owning form, as the server registers it.
    service_ = std::make_unique<LeasesService>(
        std::make_unique<store::RocksDbLeaseStore>(db_.get(), &clock_));
    grpc::ServerBuilder builder;
    const std::string address = "unix:" + dir_ + "/leases.sock";
    builder.AddListeningPort(address, grpc::InsecureServerCredentials());
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    EXPECT_NE(server_, nullptr);
    stub_ =
        leasespb::Leases::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  }

  ~LeasesServiceTest() override {
    server_->Shutdown();
    server_.reset();
    service_.reset();
    db_.reset();
    store::RemoveAll(dir_).IgnoreError();
  }

  // A client context in namespace `ns`; "" sends no header.
  static std::unique_ptr<grpc::ClientContext> Ctx(const std::string& ns = "default") {
    auto ctx = std::make_unique<grpc::ClientContext>();
    if (!ns.empty()) ctx->AddMetadata("containerd-namespace", ns);
    return ctx;
  }

  grpc::Status Create(const std::string& id, std::map<std::string, std::string> labels = {},
                      leasespb::Lease* out = nullptr, const std::string& ns = "default") {
    leasespb::CreateRequest req;
    req.set_id(id);
    req.mutable_labels()->insert(labels.begin(), labels.end());
    leasespb::CreateResponse resp;
    grpc::Status s = stub_->Create(Ctx(ns).get(), req, &resp);
    if (out != nullptr) *out = resp.lease();
    return s;
  }

  grpc::StatusCode Delete(const std::string& id, bool sync = false) {
    leasespb::DeleteRequest req;
    req.set_id(id);
    req.set_sync(sync);
    google::protobuf::Empty resp;
    return stub_->Delete(Ctx().get(), req, &resp).error_code();
  }

  std::vector<std::string> List(std::vector<std::string> filters, const std::string& ns = "default",
                                grpc::StatusCode want = grpc::StatusCode::OK) {
    leasespb::ListRequest req;
    for (const std::string& f : filters) req.add_filters(f);
    leasespb::ListResponse resp;
    grpc::Status s = stub_->List(Ctx(ns).get(), req, &resp);
    EXPECT_EQ(s.error_code(), want) << s.error_message();
    std::vector<std::string> ids;
    for (const leasespb::Lease& l : resp.leases()) ids.push_back(l.id());
    return ids;
  }

  grpc::StatusCode AddResource(const std::string& lease, const std::string& type,
                               const std::string& id) {
    leasespb::AddResourceRequest req;
    req.set_id(lease);
    req.mutable_resource()->set_type(type);
    req.mutable_resource()->set_id(id);
    google::protobuf::Empty resp;
    return stub_->AddResource(Ctx().get(), req, &resp).error_code();
  }

  grpc::StatusCode DeleteResource(const std::string& lease, const std::string& type,
                                  const std::string& id) {
    leasespb::DeleteResourceRequest req;
    req.set_id(lease);
    req.mutable_resource()->set_type(type);
    req.mutable_resource()->set_id(id);
    google::protobuf::Empty resp;
    return stub_->DeleteResource(Ctx().get(), req, &resp).error_code();
  }

  // "type id" per resource; the status code in `code`.
  std::vector<std::string> ListResources(const std::string& lease, grpc::StatusCode* code) {
    leasespb::ListResourcesRequest req;
    req.set_id(lease);
    leasespb::ListResourcesResponse resp;
    *code = stub_->ListResources(Ctx().get(), req, &resp).error_code();
    std::vector<std::string> out;
    for (const leasespb::Resource& r : resp.resources()) out.push_back(r.type() + " " + r.id());
    return out;
  }

  std::string dir_;
  store::FakeClock clock_{absl::FromUnixNanos(1700000000000000005)};
  std::unique_ptr<store::MetadataDb> db_;
  std::unique_ptr<LeasesService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<leasespb::Leases::Stub> stub_;
};

TEST_F(LeasesServiceTest, EveryRpcRequiresANamespace) {
  const std::vector<std::function<grpc::Status(grpc::ClientContext*)>> rpcs = {
      [&](grpc::ClientContext* c) {
        leasespb::CreateRequest req;
        req.set_id("l");
        leasespb::CreateResponse resp;
        return stub_->Create(c, req, &resp);
      },
      [&](grpc::ClientContext* c) {
        leasespb::DeleteRequest req;
        req.set_id("l");
        google::protobuf::Empty resp;
        return stub_->Delete(c, req, &resp);
      },
      [&](grpc::ClientContext* c) {
        leasespb::ListResponse resp;
        return stub_->List(c, leasespb::ListRequest(), &resp);
      },
      [&](grpc::ClientContext* c) {
        leasespb::AddResourceRequest req;
        req.set_id("l");
        req.mutable_resource()->set_type("ingests");
        req.mutable_resource()->set_id("r");
        google::protobuf::Empty resp;
        return stub_->AddResource(c, req, &resp);
      },
      [&](grpc::ClientContext* c) {
        leasespb::DeleteResourceRequest req;
        req.set_id("l");
        req.mutable_resource()->set_type("ingests");
        req.mutable_resource()->set_id("r");
        google::protobuf::Empty resp;
        return stub_->DeleteResource(c, req, &resp);
      },
      [&](grpc::ClientContext* c) {
        leasespb::ListResourcesRequest req;
        req.set_id("l");
        leasespb::ListResourcesResponse resp;
        return stub_->ListResources(c, req, &resp);
      },
  };
  for (size_t i = 0; i < rpcs.size(); ++i) {
    SCOPED_TRACE(i);
    grpc::Status missing = rpcs[i](Ctx("").get());
    EXPECT_EQ(missing.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
        << missing.error_message();
    EXPECT_EQ(rpcs[i](Ctx("not/valid").get()).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  EXPECT_THAT(List({}), IsEmpty()) << "nothing was created without a namespace";
}

TEST_F(LeasesServiceTest, CreateReturnsTheStoredLease) {
  leasespb::Lease lease;
  grpc::Status s = Create(
      "lease-1", {{"containerd.io/gc.expire", "2030-01-01T00:00:00Z"}, {"dropped", ""}}, &lease);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(lease.id(), "lease-1");
  EXPECT_EQ(lease.created_at().seconds(), 1700000000);
  EXPECT_EQ(lease.created_at().nanos(), 5);
  EXPECT_THAT(lease.labels(),
              UnorderedElementsAre(Pair("containerd.io/gc.expire", "2030-01-01T00:00:00Z")));

  leasespb::ListResponse resp;
  ASSERT_TRUE(stub_->List(Ctx().get(), leasespb::ListRequest(), &resp).ok());
  ASSERT_EQ(resp.leases_size(), 1);
  EXPECT_EQ(resp.leases(0).DebugString(), lease.DebugString());
}

// containerd's service answers an empty ID with leases.WithRandomID.
TEST_F(LeasesServiceTest, CreateWithEmptyIdGeneratesOne) {
  leasespb::Lease a, b;
  ASSERT_TRUE(Create("", {}, &a).ok());
  ASSERT_TRUE(Create("", {}, &b).ok());
  EXPECT_THAT(a.id(), MatchesRegex("[0-9]+-[A-Za-z0-9_-]{4}"));
  EXPECT_NE(a.id(), b.id());
  EXPECT_THAT(List({}), UnorderedElementsAre(a.id(), b.id()));
}

TEST_F(LeasesServiceTest, CreateErrors) {
  ASSERT_TRUE(Create("dup").ok());
  EXPECT_EQ(Create("dup").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(Create("big", {{"k", std::string(store::kMaxLabelSize, 'v')}}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(List({}), ElementsAre("dup"));
}

TEST_F(LeasesServiceTest, ListFiltersAndNamespaces) {
  ASSERT_TRUE(Create("a", {{"containerd.io/gc.expire", "2030-01-01T00:00:00Z"}}).ok());
  ASSERT_TRUE(Create("b").ok());
  ASSERT_TRUE(Create("other", {}, nullptr, "k8s.io").ok());
  EXPECT_THAT(List({}), ElementsAre("a", "b"));
  EXPECT_THAT(List({}, "k8s.io"), ElementsAre("other"));
  EXPECT_THAT(List({"id==b"}), ElementsAre("b"));
  EXPECT_THAT(List({R"(labels."containerd.io/gc.expire")"}), ElementsAre("a"));
  EXPECT_THAT(List({"id==a", "id==b"}), ElementsAre("a", "b"));
  EXPECT_THAT(List({R"(labels."unterminated)"}, "default", grpc::StatusCode::INVALID_ARGUMENT),
              IsEmpty());
}

TEST_F(LeasesServiceTest, DeleteWithAndWithoutSync) {
  ASSERT_TRUE(Create("a").ok());
  ASSERT_TRUE(Create("b").ok());
  EXPECT_EQ(Delete("a"), grpc::StatusCode::OK);
  // No garbage collector to wait for: sync is accepted and changes nothing.
  EXPECT_EQ(Delete("b", /*sync=*/true), grpc::StatusCode::OK);
  EXPECT_THAT(List({}), IsEmpty());
  EXPECT_EQ(Delete("a"), grpc::StatusCode::NOT_FOUND);
}

TEST_F(LeasesServiceTest, Resources) {
  ASSERT_TRUE(Create("l").ok());
  EXPECT_EQ(AddResource("l", "content", kDigest), grpc::StatusCode::OK);
  EXPECT_EQ(AddResource("l", "ingests", "default/1/layer"), grpc::StatusCode::OK);
  EXPECT_EQ(AddResource("l", "snapshots/overlayfs", "key"), grpc::StatusCode::OK);
  grpc::StatusCode code;
  EXPECT_THAT(
      ListResources("l", &code),
      ElementsAre("content " + kDigest, "ingests default/1/layer", "snapshots/overlayfs key"));
  EXPECT_EQ(code, grpc::StatusCode::OK);

  EXPECT_EQ(DeleteResource("l", "ingests", "default/1/layer"), grpc::StatusCode::OK);
  EXPECT_THAT(ListResources("l", &code),
              ElementsAre("content " + kDigest, "snapshots/overlayfs key"));

  ASSERT_EQ(Delete("l"), grpc::StatusCode::OK);
  ASSERT_TRUE(Create("l").ok());
  EXPECT_THAT(ListResources("l", &code), IsEmpty()) << "a deleted lease's resources are gone";
}

TEST_F(LeasesServiceTest, ResourceErrors) {
  ASSERT_TRUE(Create("l").ok());
  grpc::StatusCode code;
  EXPECT_EQ(AddResource("missing", "content", kDigest), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(DeleteResource("missing", "content", kDigest), grpc::StatusCode::NOT_FOUND);
  ListResources("missing", &code);
  EXPECT_EQ(code, grpc::StatusCode::NOT_FOUND);

  EXPECT_EQ(AddResource("l", "content", "sha256:nope"), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(AddResource("l", "snapshots", "key"), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(AddResource("l", "containers", "c"), grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(DeleteResource("l", "content", "sha256:nope"), grpc::StatusCode::INVALID_ARGUMENT);

  // A request without a resource carries the empty type, which containerd
  // does not support either.
  leasespb::AddResourceRequest req;
  req.set_id("l");
  google::protobuf::Empty resp;
  EXPECT_EQ(stub_->AddResource(Ctx().get(), req, &resp).error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_THAT(ListResources("l", &code), IsEmpty());
}

TEST(RandomLeaseIdTest, HasContainerdsShape) {
  for (int i = 0; i < 100; ++i) {
    EXPECT_THAT(RandomLeaseId(), MatchesRegex("[0-9]{1,9}-[A-Za-z0-9_-]{4}"));
  }
}

}  // namespace
}  // namespace imaged::plugin
