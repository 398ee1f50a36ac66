// imaged serves gRPC server reflection, which grpcurl uses to list services.
// The reflection messages are registered by gRPC's own library, so the test
// speaks them as raw bytes over a generic call.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include "gtest/gtest.h"
#include "plugin/test_server.h"

namespace imaged::plugin {
namespace {

// Runs one step of an async call and waits for it.
bool Step(grpc::CompletionQueue& cq, int tag) {
  void* got = nullptr;
  bool ok = false;
  return cq.Next(&got, &ok) && ok && got == reinterpret_cast<void*>(tag);
}

TEST(ReflectionTest, ListsEveryService) {
  ServerFixture f;
  grpc::GenericStub stub(f.channel());
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  auto call = stub.PrepareCall(&ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(Step(cq, 1));
  // ServerReflectionRequest{list_services: ""}: field 7, length-delimited, empty.
  grpc::Slice request(std::string("\x3a\x00", 2));
  grpc::ByteBuffer out(&request, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  ASSERT_TRUE(Step(cq, 2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(Step(cq, 3));
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(4));
  ASSERT_TRUE(Step(cq, 4));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  ASSERT_TRUE(Step(cq, 5));
  EXPECT_TRUE(status.ok()) << status.error_message();

  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(in.Dump(&slices).ok());
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  for (const char* service : {"containerd.services.content.v1.Content",
                              "containerd.services.images.v1.Images",
                              "containerd.services.leases.v1.Leases",
                              "containerd.services.events.v1.Events", "runtime.v1.ImageService",
                              "imaged.v1.Admin", "grpc.health.v1.Health"}) {
    EXPECT_NE(bytes.find(service), std::string::npos) << service << " not listed";
  }
  cq.Shutdown();
}

}  // namespace
}  // namespace imaged::plugin
