// The Content service over a real imaged server on a unix socket: the content
// contract through the wire, then what only the wire has (the Write stream
// protocol, batching, chunking, the namespace header, server startup).
#include <grpcpp/create_channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/containerd/events/content.pb.h"
#include "api/containerd/services/content/v1/content.grpc.pb.h"
#include "api/containerd/services/events/v1/events.grpc.pb.h"
#include "gtest/gtest.h"
#include "plugin/content_client.h"
#include "plugin/content_service.h"
#include "plugin/server.h"
#include "plugin/test_server.h"
#include "store/content_store_contract.h"
#include "store/digest.h"
#include "store/files.h"
#include "store/limits.h"
#include "store/test_images.h"

namespace imaged::plugin {
namespace {

namespace fs = std::filesystem;
using store::ContentStoreContract;
using store::Sha256;

std::string MakeTempDir() { return MakeShortTempDir(); }

class GrpcHarness final : public store::ContentHarness {
 public:
  GrpcHarness() : client_(fixture_.channel()) {}
  store::ContentStore& store() override { return client_; }

 private:
  ServerFixture fixture_;
  RemoteContentStore client_;
};

INSTANTIATE_TEST_SUITE_P(Grpc, ContentStoreContract,
                         ::testing::Values(store::ContentHarnessFactory(
                             [] { return std::make_unique<GrpcHarness>(); })));

class ContentServiceTest : public ::testing::Test {
 protected:
  using WriteStream = grpc::ClientReaderWriter<contentpb::WriteContentRequest,
                                               contentpb::WriteContentResponse>;

  ContentServiceTest() : stub_(contentpb::Content::NewStub(fixture_.channel())) {}

  static contentpb::WriteContentRequest Req(contentpb::WriteAction action, absl::string_view ref,
                                            int64_t offset = 0, absl::string_view data = "") {
    contentpb::WriteContentRequest req;
    req.set_action(action);
    req.set_ref(std::string(ref));
    req.set_offset(offset);
    req.set_data(std::string(data));
    return req;
  }

  // Sends each request, reading one response after each; returns the stream's status.
  grpc::Status Exchange(const std::vector<contentpb::WriteContentRequest>& reqs,
                        std::vector<contentpb::WriteContentResponse>* resps = nullptr,
                        absl::string_view ns = "default") {
    auto ctx = NamespacedContext(ns);
    auto stream = stub_->Write(ctx.get());
    for (const auto& req : reqs) {
      contentpb::WriteContentResponse resp;
      if (!stream->Write(req) || !stream->Read(&resp)) break;
      if (resps) resps->push_back(resp);
    }
    stream->WritesDone();
    return stream->Finish();
  }

  grpc::Status Put(absl::string_view ns, absl::string_view data) {
    auto commit = Req(contentpb::COMMIT, "put", 0, data);
    commit.set_expected(Sha256::Of(data));
    return Exchange({commit}, nullptr, ns);
  }

  ServerFixture fixture_;
  std::unique_ptr<contentpb::Content::Stub> stub_;
};

// containerd's content events: /content/create (2.x) once a commit made a
// new blob, /content/delete after a Delete; nothing for a failed commit or
// a blob that was there already.
TEST_F(ContentServiceTest, CommitsAndDeletesPublishContentEvents) {
  auto events = eventspb::Events::NewStub(fixture_.channel());
  grpc::ClientContext sub_ctx;
  eventspb::SubscribeRequest sub_req;
  sub_req.add_filters("topic~=\"^/content/\"");
  auto stream = events->Subscribe(&sub_ctx, sub_req);
  stream->WaitForInitialMetadata();

  ASSERT_TRUE(Put("default", "evented blob").ok());
  ASSERT_EQ(Put("default", "evented blob").error_code(), grpc::StatusCode::ALREADY_EXISTS);
  auto bad = Req(contentpb::COMMIT, "bad", 0, "x");
  bad.set_expected(Sha256::Of("y"));
  ASSERT_FALSE(Exchange({bad}).ok());
  contentpb::DeleteContentRequest del;
  del.set_digest(Sha256::Of("evented blob"));
  google::protobuf::Empty empty;
  auto ctx = NamespacedContext("default");
  ASSERT_TRUE(stub_->Delete(ctx.get(), del, &empty).ok());

  eventspb::Envelope e;
  ASSERT_TRUE(stream->Read(&e));
  EXPECT_EQ(e.topic(), "/content/create");
  EXPECT_EQ(e.namespace_(), "default");
  EXPECT_EQ(e.event().type_url(), "containerd.events.ContentCreate");
  ::containerd::events::ContentCreate created;
  ASSERT_TRUE(created.ParseFromString(e.event().value()));
  EXPECT_EQ(created.digest(), Sha256::Of("evented blob"));
  EXPECT_EQ(created.size(), 12);
  ASSERT_TRUE(stream->Read(&e));  // the next one is the delete: nothing between
  EXPECT_EQ(e.topic(), "/content/delete");
  EXPECT_EQ(e.event().type_url(), "containerd.events.ContentDelete");
  ::containerd::events::ContentDelete deleted;
  ASSERT_TRUE(deleted.ParseFromString(e.event().value()));
  EXPECT_EQ(deleted.digest(), Sha256::Of("evented blob"));
  sub_ctx.TryCancel();
}

TEST_F(ContentServiceTest, WriteStreamWithoutARefIsInvalidArgument) {
  EXPECT_EQ(Exchange({Req(contentpb::STAT, "")}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  // A stream that ends before its first message.
  EXPECT_EQ(Exchange({}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ContentServiceTest, WriteAtTheWrongOffsetIsOutOfRange) {
  grpc::Status s = Exchange({Req(contentpb::WRITE, "r", 0, "abc"), Req(contentpb::WRITE, "r", 5, "d")});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OUT_OF_RANGE) << s.error_message();
  // Nothing lost: the ingest still holds its three bytes.
  std::vector<contentpb::WriteContentResponse> resps;
  EXPECT_TRUE(Exchange({Req(contentpb::STAT, "r")}, &resps).ok());
  ASSERT_EQ(resps.size(), 1u);
  EXPECT_EQ(resps[0].offset(), 3);
}

TEST_F(ContentServiceTest, NegativeWriteOffsetIsInvalidArgument) {
  EXPECT_EQ(Exchange({Req(contentpb::WRITE, "r", -1, "x")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ContentServiceTest, StatReportsOffsetTotalAndDigestSoFar) {
  auto first = Req(contentpb::STAT, "r");
  first.set_total(10);
  std::vector<contentpb::WriteContentResponse> resps;
  ASSERT_TRUE(Exchange({first, Req(contentpb::WRITE, "r", 0, "hello"), Req(contentpb::STAT, "r")},
                       &resps)
                  .ok());
  ASSERT_EQ(resps.size(), 3u);
  EXPECT_EQ(resps[0].offset(), 0);
  EXPECT_EQ(resps[0].total(), 10);
  EXPECT_EQ(resps[1].offset(), 5);
  EXPECT_EQ(resps[2].offset(), 5);
  EXPECT_EQ(resps[2].digest(), Sha256::Of("hello"));
  EXPECT_GT(resps[2].started_at().seconds(), 0);
}

TEST_F(ContentServiceTest, WriteAtOffsetZeroRestartsAResumedIngest) {
  ASSERT_TRUE(Exchange({Req(contentpb::WRITE, "r", 0, "stale")}).ok());
  auto commit = Req(contentpb::COMMIT, "r", 0, "fresh");
  commit.set_expected(Sha256::Of("fresh"));
  std::vector<contentpb::WriteContentResponse> resps;
  ASSERT_TRUE(Exchange({commit}, &resps).ok());
  EXPECT_EQ(resps[0].offset(), 5);
  EXPECT_EQ(resps[0].digest(), Sha256::Of("fresh"));
}

TEST_F(ContentServiceTest, CommitMismatchIsFailedPreconditionAndStoresNothing) {
  auto commit = Req(contentpb::COMMIT, "r", 0, "data");
  commit.set_total(5);
  EXPECT_EQ(Exchange({commit}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  commit = Req(contentpb::COMMIT, "r2", 0, "data");
  commit.set_expected(Sha256::Of("atad"));
  EXPECT_EQ(Exchange({commit}).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  contentpb::InfoRequest info;
  info.set_digest(Sha256::Of("data"));
  contentpb::InfoResponse resp;
  auto ctx = NamespacedContext("default");
  EXPECT_EQ(stub_->Info(ctx.get(), info, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
}

// containerd's content proxy sends no namespace but forwards the lease of
// the call it serves, which imaged does not know (containerd 1.6's CRI pull
// through the proxy failed with "lease ...: not found"): ignored there, and
// still checked for a namespaced writer.
TEST_F(ContentServiceTest, TheProxysLeaseHeaderIsContainerdsAndIgnored) {
  for (absl::string_view ns : {"", "default"}) {
    grpc::ClientContext ctx;
    if (!ns.empty()) ctx.AddMetadata("containerd-namespace", std::string(ns));
    ctx.AddMetadata("containerd-lease", "116966833-WDxe");
    auto stream = stub_->Write(&ctx);
    auto commit = Req(contentpb::COMMIT, "leased", 0, "leased bytes");
    commit.set_expected(Sha256::Of("leased bytes"));
    contentpb::WriteContentResponse resp;
    if (stream->Write(commit)) stream->Read(&resp);
    stream->WritesDone();
    grpc::Status s = stream->Finish();
    EXPECT_EQ(s.error_code(), ns.empty() ? grpc::StatusCode::OK : grpc::StatusCode::NOT_FOUND)
        << "namespace \"" << ns << "\": " << s.error_message();
  }
}

// content_proxy: containerd's in-process clients (its CRI plugin) send their
// namespace and lease through the proxy; both are containerd's. Everything
// goes to the content-proxy namespace, which imaged's collector never takes.
TEST(ContentProxyTest, NamespaceAndLeaseHeadersAreContainerds) {
  ServerFixture proxy([](Config* c) { c->content_proxy = true; });
  auto stub = contentpb::Content::NewStub(proxy.channel());
  grpc::ClientContext ctx;
  ctx.AddMetadata("containerd-namespace", "k8s.io");
  ctx.AddMetadata("containerd-lease", "595539748-wdSP");
  auto stream = stub->Write(&ctx);
  contentpb::WriteContentRequest commit;
  commit.set_action(contentpb::COMMIT);
  commit.set_ref("layer-1");
  commit.set_data("layer bytes");
  commit.set_expected(Sha256::Of("layer bytes"));
  contentpb::WriteContentResponse resp;
  if (stream->Write(commit)) stream->Read(&resp);
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  ASSERT_TRUE(s.ok()) << s.error_message();
  // Whatever namespace a call names, it sees the proxy's blobs.
  for (const char* ns : {"other", ""}) {
    grpc::ClientContext info_ctx;
    if (*ns != '\0') info_ctx.AddMetadata("containerd-namespace", ns);
    contentpb::InfoRequest info;
    info.set_digest(Sha256::Of("layer bytes"));
    contentpb::InfoResponse got;
    EXPECT_TRUE(stub->Info(&info_ctx, info, &got).ok()) << ns;
  }
}

TEST_F(ContentServiceTest, ExpectingAStoredDigestIsAlreadyExists) {
  ASSERT_TRUE(Put("default", "there").ok());
  auto stat = Req(contentpb::STAT, "again");
  stat.set_expected(Sha256::Of("there"));
  EXPECT_EQ(Exchange({stat}).error_code(), grpc::StatusCode::ALREADY_EXISTS);
}

TEST_F(ContentServiceTest, ReadStreamsChunksOfAtMostOneMiB) {
  std::string big(3 * (1 << 20) + 17, 'z');
  ASSERT_TRUE(Put("default", big).ok());
  contentpb::ReadContentRequest req;
  req.set_digest(Sha256::Of(big));
  auto ctx = NamespacedContext("default");
  auto reader = stub_->Read(ctx.get(), req);
  contentpb::ReadContentResponse resp;
  std::string all;
  int chunks = 0;
  while (reader->Read(&resp)) {
    EXPECT_LE(resp.data().size(), 1u << 20);
    EXPECT_EQ(resp.offset(), static_cast<int64_t>(all.size()));
    all += resp.data();
    ++chunks;
  }
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(chunks, 4);
  EXPECT_EQ(all, big);
}

// Reads `size` bytes of `digest` from `offset` in namespace default; the
// bytes in `out`.
grpc::Status ReadWindow(contentpb::Content::Stub* stub, const std::string& digest, int64_t offset,
                        int64_t size, std::string* out) {
  contentpb::ReadContentRequest req;
  req.set_digest(digest);
  req.set_offset(offset);
  req.set_size(size);
  auto ctx = NamespacedContext("default");
  auto reader = stub->Read(ctx.get(), req);
  contentpb::ReadContentResponse resp;
  out->clear();
  while (reader->Read(&resp)) *out += resp.data();
  return reader->Finish();
}

// Read of the blob "0123456789" in namespace default: its code, its bytes in `out`.
grpc::StatusCode ReadDigits(contentpb::Content::Stub* stub, int64_t offset, int64_t size,
                            std::string* out) {
  return ReadWindow(stub, Sha256::Of("0123456789"), offset, size, out).error_code();
}

TEST_F(ContentServiceTest, ReadRangesAndBadOffsets) {
  ASSERT_TRUE(Put("default", "0123456789").ok());
  auto read = [&](int64_t offset, int64_t size, std::string* out) {
    return ReadDigits(stub_.get(), offset, size, out);
  };
  std::string out;
  EXPECT_EQ(read(3, 4, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "3456");
  EXPECT_EQ(read(8, 100, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "89");
  EXPECT_EQ(read(10, 0, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "");
  EXPECT_EQ(read(11, 0, &out), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_EQ(read(std::numeric_limits<int64_t>::max(), 1, &out), grpc::StatusCode::OUT_OF_RANGE);
}

// containerd clamps: a negative offset reads from 0, a size of 0 or less or
// past the end reads to the end. offset + size must not overflow (issue 13:
// offset 1 and size INT64_MAX answered OK with no bytes).
TEST_F(ContentServiceTest, ReadWindowIsClampedAsContainerdDoes) {
  ASSERT_TRUE(Put("default", "0123456789").ok());
  auto read = [&](int64_t offset, int64_t size, std::string* out) {
    return ReadDigits(stub_.get(), offset, size, out);
  };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::string out;
  EXPECT_EQ(read(1, kMax, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "123456789");
  EXPECT_EQ(read(9, kMax - 5, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "9");
  EXPECT_EQ(read(-1, 0, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "0123456789");
  EXPECT_EQ(read(std::numeric_limits<int64_t>::min(), 3, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "012");
  EXPECT_EQ(read(2, -5, &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "23456789");
  EXPECT_EQ(read(4, std::numeric_limits<int64_t>::min(), &out), grpc::StatusCode::OK);
  EXPECT_EQ(out, "456789");
}

TEST_F(ContentServiceTest, ReadOfATruncatedBlobFileIsDataLoss) {
  const std::string data(100000, 'x');  // a file: over the inline limit
  ASSERT_TRUE(Put("default", data).ok());
  const std::string path = fixture_.server()->content_store().BlobPath(Sha256::Of(data));
  ASSERT_EQ(::truncate(path.c_str(), 4), 0);
  contentpb::ReadContentRequest req;
  req.set_digest(Sha256::Of(data));
  auto ctx = NamespacedContext("default");
  auto reader = stub_->Read(ctx.get(), req);
  contentpb::ReadContentResponse resp;
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
}


// containerd's content proxy reads 32 KiB windows, answered on the async
// calls' thread; larger windows are read by the reader threads. Both, from
// several callers at once, of a file and of a row, give the blob's bytes.
TEST_F(ContentServiceTest, ConcurrentReadWindowsOfEverySizeGiveTheBlobsBytes) {
  std::string file(3 * (1 << 20) + 4321, '\0');
  for (size_t i = 0; i < file.size(); ++i) file[i] = static_cast<char>((i * 131) >> 7);
  const std::string row = file.substr(0, 40000);
  ASSERT_TRUE(Put("default", file).ok());
  ASSERT_TRUE(Put("default", row).ok());
  const std::vector<int64_t> windows = {1, 32 << 10, ContentService::kInlineRead,
                                        ContentService::kInlineRead + 1, (1 << 20) + 5, 0};
  std::vector<std::thread> callers;
  std::atomic<int> bad{0};
  for (int t = 0; t < 6; ++t) {
    callers.emplace_back([&, t] {
      const std::string& blob = t % 3 == 2 ? row : file;
      const std::string digest = Sha256::Of(blob);
      const int64_t window = windows[t];
      const int64_t step = window > 0 ? window : static_cast<int64_t>(blob.size());
      // A window of one byte at a few offsets only: every offset would be
      // millions of calls.
      for (int64_t off = 0; off < static_cast<int64_t>(blob.size());
           off += window == 1 ? 99991 : step) {
        std::string out;
        grpc::Status s = ReadWindow(stub_.get(), digest, off, window, &out);
        const size_t want = window > 0 ? std::min<size_t>(window, blob.size() - off)
                                       : blob.size() - off;
        if (!s.ok() || out != blob.substr(off, want)) ++bad;
      }
    });
  }
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(bad.load(), 0);
}

// A client that goes away in the middle of a large read leaves the server
// serving, and a reader thread free for the next.
TEST_F(ContentServiceTest, AReadCancelledMidStreamLeavesTheServerServing) {
  const std::string big(8 << 20, 'c');
  ASSERT_TRUE(Put("default", big).ok());
  for (int i = 0; i < 2 * ContentService::kReaderThreads + 1; ++i) {
    contentpb::ReadContentRequest req;
    req.set_digest(Sha256::Of(big));
    auto ctx = NamespacedContext("default");
    auto reader = stub_->Read(ctx.get(), req);
    contentpb::ReadContentResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    ctx->TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  std::string out;
  ASSERT_TRUE(ReadWindow(stub_.get(), Sha256::Of(big), 5, 3 << 20, &out).ok());
  EXPECT_EQ(out, big.substr(5, 3 << 20));
}

// Whole reads whose clients take one chunk and then no more. Their channel
// sends no BDP probes, so a stream's window stays 64 KiB and each call stays
// streaming on the server (holding what it holds) until cancelled or ended.
class StalledReads {
 public:
  explicit StalledReads(const std::string& address) {
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    stub_ = contentpb::Content::NewStub(grpc::CreateCustomChannel(
        "unix:" + address, grpc::InsecureChannelCredentials(), args));
  }
  ~StalledReads() {
    for (auto& ctx : contexts_) ctx->TryCancel();
    Finish();
  }

  // Starts a whole read of `digest`; with `stall`, takes its first chunk and
  // keeps the call (false if no chunk came), else returns the call's status.
  grpc::Status Read(const std::string& digest, bool stall = true) {
    contentpb::ReadContentRequest req;
    req.set_digest(digest);
    auto ctx = NamespacedContext("default");
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Read(ctx.get(), req);
    contentpb::ReadContentResponse resp;
    const bool got = reader->Read(&resp);
    if (!stall) {
      while (reader->Read(&resp)) {
      }
      return reader->Finish();
    }
    if (!got) return reader->Finish();
    contexts_.push_back(std::move(ctx));
    readers_.push_back(std::move(reader));
    return grpc::Status::OK;
  }
  void Cancel(size_t i) { contexts_[i]->TryCancel(); }
  // Ends every stalled call: what the client then got.
  std::vector<grpc::Status> Finish() {
    std::vector<grpc::Status> ended;
    for (auto& reader : readers_) {
      contentpb::ReadContentResponse resp;
      while (reader->Read(&resp)) {
      }
      ended.push_back(reader->Finish());
    }
    readers_.clear();
    contexts_.clear();
    return ended;
  }

 private:
  std::unique_ptr<contentpb::Content::Stub> stub_;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts_;
  std::vector<std::unique_ptr<grpc::ClientReader<contentpb::ReadContentResponse>>> readers_;
};

// Reads of windows over 64 KiB stream at most store::kMaxConcurrentLargeReads
// at once; one more is ResourceExhausted, a small window is still answered,
// and a slot freed by a client that went away serves the next.
TEST_F(ContentServiceTest, LargeReadsAtOnceAreBounded) {
  const std::string big(12 << 20, 'b');
  const std::string digest = Sha256::Of(big);
  ASSERT_TRUE(Put("default", big).ok());
  StalledReads stalled(fixture_.config().address);
  for (int i = 0; i < store::kMaxConcurrentLargeReads; ++i) {
    ASSERT_TRUE(stalled.Read(digest).ok());
  }
  grpc::Status s = stalled.Read(digest, /*stall=*/false);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(s.error_message().find("try again"), std::string::npos) << s.error_message();
  std::string out;
  ASSERT_TRUE(ReadWindow(stub_.get(), digest, 7, 32 << 10, &out).ok());
  EXPECT_EQ(out, big.substr(7, 32 << 10));

  // One client goes away: its slot is freed once its call has ended.
  stalled.Cancel(0);
  for (int i = 0; i < 100; ++i) {
    s = ReadWindow(stub_.get(), digest, 0, 0, &out);
    if (s.error_code() != grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out, big);
}

// A client that stops reading a large blob holds no thread: the server still
// answers a read that needs a reader thread, and shuts down within its drain
// timeout, ending the stalled calls.
TEST(ContentServiceShutdownTest, AStalledReaderDoesNotHoldTheServerOrItsShutdown) {
  auto fixture = std::make_unique<ServerFixture>(
      [](Config* config) { config->shutdown_timeout = absl::Seconds(1); });
  RemoteContentStore client(fixture->channel());
  const std::string big(12 << 20, 's');
  ASSERT_TRUE(store::WriteBlob(client, "default", big).ok());
  StalledReads stalled(fixture->config().address);
  for (int i = 0; i < 2 * ContentService::kReaderThreads + 1; ++i) {
    ASSERT_TRUE(stalled.Read(Sha256::Of(big)).ok());
  }
  auto stub = contentpb::Content::NewStub(fixture->channel());
  std::string out;
  ASSERT_TRUE(ReadWindow(stub.get(), Sha256::Of(big), (6 << 20) + 1, 200000, &out).ok());
  EXPECT_EQ(out, big.substr((6 << 20) + 1, 200000));
  const absl::Time start = absl::Now();
  fixture.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  for (const grpc::Status& ended : stalled.Finish()) EXPECT_FALSE(ended.ok());
}

TEST_F(ContentServiceTest, ListSendsBatches) {
  for (int i = 0; i < 250; ++i) ASSERT_TRUE(Put("default", absl::StrCat("blob ", i)).ok());
  contentpb::ListContentRequest req;
  auto ctx = NamespacedContext("default");
  auto reader = stub_->List(ctx.get(), req);
  contentpb::ListContentResponse resp;
  std::vector<int> sizes;
  while (reader->Read(&resp)) sizes.push_back(resp.info_size());
  ASSERT_TRUE(reader->Finish().ok());
  EXPECT_EQ(sizes, (std::vector<int>{100, 100, 50}));
}

TEST_F(ContentServiceTest, NamespaceHeader) {
  ASSERT_TRUE(Put("", "proxied").ok());  // no header: containerd's proxy
  contentpb::InfoRequest req;
  req.set_digest(Sha256::Of("proxied"));
  contentpb::InfoResponse resp;
  auto none = NamespacedContext("");
  EXPECT_TRUE(stub_->Info(none.get(), req, &resp).ok());
  auto other = NamespacedContext("default");
  EXPECT_EQ(stub_->Info(other.get(), req, &resp).error_code(), grpc::StatusCode::NOT_FOUND);
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("containerd-namespace", "");  // present but empty, as containerd answers it
    EXPECT_EQ(stub_->Info(&ctx, req, &resp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  for (const char* bad : {"-lead", "trail.", "a..b", "sp ace", "slash/y", "under_"}) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("containerd-namespace", bad);
    EXPECT_EQ(stub_->Info(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
  }
  grpc::ClientContext ctx;
  ctx.AddMetadata("containerd-namespace", std::string(77, 'a'));
  EXPECT_EQ(stub_->Info(&ctx, req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ContentServiceTest, UpdateWithUnknownPathIsInvalidArgument) {
  ASSERT_TRUE(Put("default", "labelled").ok());
  contentpb::UpdateRequest req;
  req.mutable_info()->set_digest(Sha256::Of("labelled"));
  req.mutable_update_mask()->add_paths("size");
  contentpb::UpdateResponse resp;
  auto ctx = NamespacedContext("default");
  EXPECT_EQ(stub_->Update(ctx.get(), req, &resp).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ContentServiceTest, HealthIsServing) {
  auto* health = fixture_.server();
  ASSERT_NE(health, nullptr);
  // grpc.health.v1.Health/Check with an empty service name, by raw method call.
  grpc::ClientContext ctx;
  std::string empty_request;  // HealthCheckRequest{} is zero bytes on the wire
  grpc::ByteBuffer req_buf, resp_buf;
  grpc::Slice slice(empty_request);
  req_buf = grpc::ByteBuffer(&slice, 1);
  grpc::GenericStub generic(fixture_.channel());
  grpc::Status status;
  bool done = false;
  absl::Mutex mu;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req_buf, &resp_buf,
                    [&](grpc::Status s) {
                      absl::MutexLock lock(&mu);
                      status = s;
                      done = true;
                    });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&done));
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp_buf.Dump(&slices).ok());
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING
}

TEST(ServerTest, SocketIsCreatedWithMode0660InAMissingDirectory) {
  ServerFixture f;
  struct stat st;
  ASSERT_EQ(::stat(f.config().address.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST(ServerTest, SocketOfALiveServerIsFailedPrecondition) {
  ServerFixture f;
  Config second = f.config();
  second.root += "-second";
  absl::Status s = Server::Start(second).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("in use by a live server"), absl::string_view::npos) << s;
  struct stat st;
  EXPECT_EQ(::stat(f.config().address.c_str(), &st), 0) << "the live server's socket was removed";
}

TEST(ServerTest, StaleSocketIsReplacedAndBlobsSurviveARestart) {
  ServerFixture f;
  Config config = f.config();
  {
    RemoteContentStore client(f.channel());
    auto w = client.Writer("default", "r", 0, "");
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("survivor").ok());
    ASSERT_TRUE((*w)->Commit(0, Sha256::Of("survivor"), {}).ok());
  }
  f.server()->Shutdown();
  // A socket file left by a server that died: nothing listens on it.
  {
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strcpy(addr.sun_path, config.address.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::close(fd);
  }
  auto restarted = Server::Start(config);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  RemoteContentStore client(
      grpc::CreateChannel("unix:" + config.address, grpc::InsecureChannelCredentials()));
  EXPECT_TRUE(client.Info("default", Sha256::Of("survivor")).ok());
}

TEST(ServerTest, ShutdownEndsCallsThatOutliveTheDeadlineAndKeepsTheirData) {
  ServerFixture f;
  Config config = f.config();
  RemoteContentStore client(f.channel());
  auto w = client.Writer("default", "in-flight", 0, "");
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("abc").ok());
  // The stream stays open: its handler waits for the next message.
  absl::Time start = absl::Now();
  f.server()->Shutdown();
  EXPECT_LT(absl::Now() - start, config.shutdown_timeout + absl::Seconds(3));
  EXPECT_FALSE((*w)->Write("d").ok());
  w->reset();

  auto restarted = Server::Start(config);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  RemoteContentStore again(
      grpc::CreateChannel("unix:" + config.address, grpc::InsecureChannelCredentials()));
  auto st = again.Status("default", "in-flight");
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->offset, 3);
}

TEST(ServerTest, RootThatCannotBeCreatedIsAClearError) {
  std::string dir = MakeTempDir();
  { std::ofstream(dir + "/file") << "x"; }
  Config config;
  config.root = dir + "/file/root";
  config.address = dir + "/imaged.sock";
  absl::Status s = Server::Start(config).status();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find(config.root), absl::string_view::npos) << s;
  store::RemoveAll(dir).IgnoreError();
}

TEST(ServerTest, PathThatIsNotASocketIsFailedPrecondition) {
  std::string dir = MakeTempDir();
  { std::ofstream(dir + "/imaged.sock") << "not a socket"; }
  absl::Status s = PrepareSocket(dir + "/imaged.sock");
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  store::RemoveAll(dir).IgnoreError();
}

}  // namespace
}  // namespace imaged::plugin
