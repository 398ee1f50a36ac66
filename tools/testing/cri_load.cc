// cri_load: what kubelet asks of a CRI image endpoint, from several threads
// at once, with latency per kind of call. Used by the mirror fault test (are
// reads fast while containerd hangs?) and to measure it (docs/benchmarks.md).
//
//   cri_load --address SOCK [--hit REF] [--misses N] [--miss-prefix P]
//            [--list-callers N] [--hit-callers N] [--duration 5s] [--deadline 10s]
//
// For --duration (each caller makes at least one call), in parallel:
//   list   --list-callers threads calling ListImages in a loop
//   hit    --hit-callers threads calling ImageStatus of REF (it must be present)
//   miss   N threads calling ImageStatus of names nobody has (P-<thread>-<i>),
//          so N misses are always in flight
// Each call has --deadline (crictl's default is 10 s). Prints one line per
// kind: "KIND calls=N errors=N p50_ms=X p99_ms=X max_ms=X" (errors: any
// non-OK status, a hit that came back without an image, a miss that came back
// with one), then the first error seen of each kind. Exits 0 when no call
// failed, 1 otherwise.
#include <grpcpp/create_channel.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/runtime/v1/api.grpc.pb.h"

namespace {

namespace cripb = ::runtime::v1;

struct Kind {
  std::string name;
  std::mutex mu;
  std::vector<double> ms;
  int64_t errors = 0;
  std::string first_error;

  void Add(double took_ms, const std::string& error) {
    std::lock_guard<std::mutex> lock(mu);
    ms.push_back(took_ms);
    if (!error.empty()) {
      ++errors;
      if (first_error.empty()) first_error = error.substr(0, 300);
    }
  }
  void Print() {
    std::lock_guard<std::mutex> lock(mu);
    std::sort(ms.begin(), ms.end());
    auto at = [&](double q) {
      return ms.empty() ? 0.0 : ms[std::min(ms.size() - 1, static_cast<size_t>(q * ms.size()))];
    };
    std::printf("%s calls=%zu errors=%lld p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n", name.c_str(),
                ms.size(), static_cast<long long>(errors), at(0.5), at(0.99),
                ms.empty() ? 0.0 : ms.back());
  }
};

bool Flag(int& i, int argc, char** argv, const char* name, std::string* out) {
  if (std::string(argv[i]) != name || i + 1 >= argc) return false;
  *out = argv[++i];
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address, hit, miss_prefix = "imaged.invalid/missing", duration_s = "5s",
                            deadline_s = "10s", misses_s = "0", list_s = "1", hit_s = "1";
  for (int i = 1; i < argc; ++i) {
    if (Flag(i, argc, argv, "--address", &address) || Flag(i, argc, argv, "--hit", &hit) ||
        Flag(i, argc, argv, "--miss-prefix", &miss_prefix) ||
        Flag(i, argc, argv, "--duration", &duration_s) ||
        Flag(i, argc, argv, "--deadline", &deadline_s) ||
        Flag(i, argc, argv, "--misses", &misses_s) ||
        Flag(i, argc, argv, "--list-callers", &list_s) ||
        Flag(i, argc, argv, "--hit-callers", &hit_s)) {
      continue;
    }
    std::cerr << "cri_load: unknown argument " << argv[i] << "\n";
    return 2;
  }
  absl::Duration duration, deadline;
  if (address.empty() || !absl::ParseDuration(duration_s, &duration) ||
      !absl::ParseDuration(deadline_s, &deadline)) {
    std::cerr << "usage: cri_load --address SOCK [--hit REF] [--misses N] [--duration 5s]\n";
    return 2;
  }
  if (address.rfind("unix://", 0) == 0) address = address.substr(7);
  const int misses = std::stoi(misses_s);
  const int list_callers = std::stoi(list_s);
  const int hit_callers = hit.empty() ? 0 : std::stoi(hit_s);

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel("unix:" + address, grpc::InsecureChannelCredentials(), args);
  auto stub = cripb::ImageService::NewStub(channel);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    std::cerr << "cri_load: cannot connect to " << address << "\n";
    return 2;
  }

  Kind list{"list"}, hit_kind{"hit"}, miss{"miss"};
  const absl::Time end = absl::Now() + duration;
  auto timed = [&](Kind& kind, auto&& call) {
    do {  // at least one call each, however short the duration
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(deadline));
      const absl::Time start = absl::Now();
      std::string error = call(&ctx);
      kind.Add(absl::ToDoubleMilliseconds(absl::Now() - start), error);
    } while (absl::Now() < end);
  };
  auto status_error = [](const grpc::Status& s) {
    return s.ok() ? std::string() : absl::StrCat("code ", s.error_code(), ": ", s.error_message());
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < list_callers; ++t) {
    threads.emplace_back([&] {
      timed(list, [&](grpc::ClientContext* ctx) {
        cripb::ListImagesRequest req;
        cripb::ListImagesResponse resp;
        return status_error(stub->ListImages(ctx, req, &resp));
      });
    });
  }
  for (int t = 0; t < hit_callers; ++t) {
    threads.emplace_back([&] {
      timed(hit_kind, [&](grpc::ClientContext* ctx) {
        cripb::ImageStatusRequest req;
        req.mutable_image()->set_image(hit);
        cripb::ImageStatusResponse resp;
        std::string e = status_error(stub->ImageStatus(ctx, req, &resp));
        if (e.empty() && !resp.has_image()) e = absl::StrCat(hit, ": not present");
        return e;
      });
    });
  }
  for (int t = 0; t < misses; ++t) {
    threads.emplace_back([&, t] {
      int i = 0;
      timed(miss, [&](grpc::ClientContext* ctx) {
        cripb::ImageStatusRequest req;
        req.mutable_image()->set_image(absl::StrCat(miss_prefix, "-", t, "-", i++, ":1"));
        cripb::ImageStatusResponse resp;
        std::string e = status_error(stub->ImageStatus(ctx, req, &resp));
        if (e.empty() && resp.has_image()) e = absl::StrCat(req.image().image(), ": present");
        return e;
      });
    });
  }
  for (std::thread& t : threads) t.join();
  int64_t errors = 0;
  for (Kind* k : {&list, &hit_kind, &miss}) {
    if (k->ms.empty()) continue;
    k->Print();
    errors += k->errors;
  }
  for (Kind* k : {&list, &hit_kind, &miss}) {
    if (!k->first_error.empty()) std::printf("%s first error: %s\n", k->name.c_str(), k->first_error.c_str());
  }
  return errors == 0 ? 0 : 1;
}
