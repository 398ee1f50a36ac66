#include "plugin/cri_service.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/time/clock.h"
#include "cri/reference.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"

namespace imaged::plugin {
namespace {

// containerd's verbose ImageStatus info: {"chainID": ..., "imageSpec": <config>}.
std::string VerboseInfo(const store::CriImage& image, const std::string& config) {
  nlohmann::json info = {{"chainID", image.chain_id}};
  nlohmann::json spec = nlohmann::json::parse(config, nullptr, /*allow_exceptions=*/false);
  info["imageSpec"] = spec.is_discarded() ? nlohmann::json::object() : spec;
  return info.dump();
}

}  // namespace

void ToCriImage(const store::CriImage& image, cripb::Image* out) {
  out->set_id(image.id);
  cri::RepoRefs refs = cri::RepoRefsOf(image.refs);
  for (const std::string& t : refs.repo_tags) out->add_repo_tags(t);
  for (const std::string& d : refs.repo_digests) out->add_repo_digests(d);
  out->set_size(static_cast<uint64_t>(image.size));
  if (image.uid) out->mutable_uid()->set_value(*image.uid);
  out->set_username(image.username);
  out->mutable_spec()->set_image(image.id);
  out->set_pinned(image.pinned);
}

void CriService::StartListCache() {
  list_cache_ = std::make_unique<ListImagesCache>([this] { return images_->Generation(); },
                                                  [this](const ListImagesCache::Previous* previous) {
                                                    return BuildList(previous);
                                                  });
}

void CriService::WarmUp() {
  list_cache_->Get([](const absl::Status&, const grpc::ByteBuffer&) {});
}

namespace {

// Appends `cri` as one ListImagesResponse.images entry (field 1,
// length-delimited: tag byte 0x0a, the length as a varint, the message),
// using `scratch` as the message.
void AppendEntry(const store::CriImage& cri, cripb::Image* scratch, std::string* out) {
  static_assert(cripb::ListImagesResponse::kImagesFieldNumber == 1);
  scratch->Clear();
  ToCriImage(cri, scratch);
  out->push_back('\x0a');
  for (size_t n = scratch->ByteSizeLong();; n >>= 7) {
    if (n < 0x80) {
      out->push_back(static_cast<char>(n));
      break;
    }
    out->push_back(static_cast<char>((n & 0x7f) | 0x80));
  }
  scratch->AppendToString(out);
}

}  // namespace

absl::StatusOr<ListImagesCache::Answer> CriService::BuildList(
    const ListImagesCache::Previous* previous) {
  ListImagesCache::Answer out;
  cripb::Image scratch;
  std::optional<std::vector<std::string>> changed;
  if (previous != nullptr) changed = images_->ChangedSince(ns_, previous->generation);
  if (changed) {
    // Patch: the changed images read again (or gone); only the chunks they
    // fall into are rebuilt.
    std::vector<ListImagesCache::Update> updates;
    updates.reserve(changed->size());
    for (const std::string& id : *changed) {
      auto image = images_->GetImage(ns_, id);
      if (!image.ok()) return image.status();
      ListImagesCache::Update update{id, {}};
      if (image->has_value()) AppendEntry(**image, &scratch, &update.entry);
      updates.push_back(std::move(update));
    }
    out.chunks = ListImagesCache::Patch(*previous->chunks, updates);
    out.patched = true;
    return out;
  }
  ListImagesCache::ChunkWriter writer;
  std::string entry;
  absl::Status s = images_->ForEachImage(ns_, [&](const store::CriImage& cri) {
    entry.clear();
    AppendEntry(cri, &scratch, &entry);
    writer.Add(entry);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  out.chunks = writer.Finish();
  return out;
}

void CriService::ServeAsync(AsyncCalls* calls) {
  calls->AddRawUnary(this, &CriService::RequestListImages, &CriService::AnswerListImages);
  calls->AddRawUnary(this, &CriService::RequestImageStatus, &CriService::AnswerImageStatus);
}

void CriService::AnswerListImages(const grpc::ByteBuffer& raw, RawReply reply) {
  cripb::ListImagesRequest request;
  if (!ParseRaw(raw, &request)) {
    reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed ListImagesRequest"), {});
    return;
  }
  const std::string& filter = request.filter().image().image();
  if (filter.empty()) {
    list_cache_->Get([reply](const absl::Status& s, const grpc::ByteBuffer& answer) {
      reply(ToGrpcStatus(s), s.ok() ? answer : grpc::ByteBuffer());
    });
    return;
  }
  // One image at most: a point lookup, answered inline.
  auto images = images_->ListImages(ns_, filter);
  if (!images.ok()) {
    reply(ToGrpcStatus(images.status()), {});
    return;
  }
  cripb::ListImagesResponse answer;
  for (const store::CriImage& image : *images) ToCriImage(image, answer.add_images());
  reply(grpc::Status::OK, Serialized(answer));
}

grpc::Status CriService::StreamImages(grpc::ServerContext*, const cripb::StreamImagesRequest* req,
                                      grpc::ServerWriter<cripb::StreamImagesResponse>* writer) {
  auto send = [&](const std::vector<store::CriImage>& batch) {
    cripb::StreamImagesResponse resp;
    for (const store::CriImage& image : batch) ToCriImage(image, resp.add_images());
    return writer->Write(resp) ? absl::OkStatus() : absl::CancelledError("client went away");
  };
  const std::string& filter = req->filter().image().image();
  if (!filter.empty()) {
    auto images = images_->ListImages(ns_, filter);
    if (!images.ok()) return ToGrpcStatus(images.status());
    return ToGrpcStatus(images->empty() ? absl::OkStatus() : send(*images));
  }
  return ToGrpcStatus(images_->StreamImages(ns_, send, kStreamBatch));
}

void CriService::SetMirror(MirrorRunner* mirror, std::shared_ptr<grpc::Channel> upstream_cri,
                           const MirrorOptions& options) {
  mirror_ = mirror;
  mirror_options_ = options;
  if (upstream_cri != nullptr) upstream_cri_ = cripb::ImageService::NewStub(std::move(upstream_cri));
  misses_ = std::make_unique<cri::MirrorMisses>(
      [mirror](const std::string& ns, const std::string& ref) {
        return mirror->mirror().SyncReference(ns, ref);
      },
      options.misses);
  if (upstream_cri_ == nullptr) disk_ = std::make_unique<cri::ContainerdDisk>(options.disk);
}

void CriService::StopMirror() {
  if (misses_ != nullptr) misses_->Stop();
  if (disk_ != nullptr) disk_->Stop();
}

cri::MirrorMisses::Stats CriService::MissStats() const {
  return misses_ != nullptr ? misses_->stats() : cri::MirrorMisses::Stats{};
}

grpc::Status CriService::Answer(const store::CriImage& image, bool verbose,
                                cripb::ImageStatusResponse* resp) {
  ToCriImage(image, resp->mutable_image());
  if (verbose) {
    auto config = images_->ImageConfigJson(ns_, image.id);
    if (!config.ok()) return ToGrpcStatus(config.status());
    (*resp->mutable_info())["info"] = VerboseInfo(image, *config);
  }
  return grpc::Status::OK;
}

grpc::Status CriService::StatusFromIndex(const cripb::ImageStatusRequest& req,
                                         cripb::ImageStatusResponse* resp, bool* found) {
  auto image = images_->ImageStatus(ns_, req.image().image());
  if (!image.ok()) return ToGrpcStatus(image.status());
  *found = image->has_value();
  if (!*found) return grpc::Status::OK;
  return Answer(**image, req.verbose(), resp);
}

std::optional<grpc::Slice> CriService::StatusFromListAnswer(const cripb::ImageStatusRequest& req,
                                                            uint64_t generation) {
  const std::string& ref = req.image().image();
  if (req.verbose() || ref.empty()) return std::nullopt;
  std::string id;
  if (cri::IsImageId(ref)) {
    // Not in the answer: it may still be a name (the index says).
    id = cri::FullImageId(ref);
  } else {
    // Validates the reference too.
    absl::StatusOr<std::optional<std::string>> resolved = images_->Resolve(ns_, ref);
    if (!resolved.ok()) return std::nullopt;  // the index says why
    if (!resolved->has_value()) {
      // Not present, unless a mirror is to be asked.
      if (misses_ != nullptr) return std::nullopt;
      return grpc::Slice();  // an empty ImageStatusResponse
    }
    id = **std::move(resolved);
  }
  std::optional<grpc::Slice> entry = list_cache_->FindEntry(id, generation);
  // A write that ended meanwhile may have moved the name: the index answers.
  if (!entry || images_->Generation() != generation) return std::nullopt;
  return entry;
}

void CriService::AnswerImageStatus(const grpc::ByteBuffer& raw, RawReply reply) {
  const RawBytes bytes(raw);
  const uint64_t generation = images_->Generation();
  if (std::optional<grpc::Slice> answer = status_answers_.Find(bytes.view(), generation)) {
    reply(grpc::Status::OK, grpc::ByteBuffer(&*answer, 1));
    return;
  }
  cripb::ImageStatusRequest req;
  if (!ParseRaw(bytes, &req)) {
    reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "malformed ImageStatusRequest"), {});
    return;
  }
  if (std::optional<grpc::Slice> answer = StatusFromListAnswer(req, generation)) {
    // Kept as a copy: a slice of the list answer would keep its chunk.
    status_answers_.Put(bytes.view(), generation, grpc::Slice(answer->begin(), answer->size()));
    reply(grpc::Status::OK, grpc::ByteBuffer(&*answer, 1));
    return;
  }
  cripb::ImageStatusResponse resp;
  bool found = false;
  grpc::Status s = StatusFromIndex(req, &resp, &found);
  if (!s.ok()) {
    reply(s, {});
    return;
  }
  if (found || misses_ == nullptr || req.image().image().empty()) {
    // An image, or kubelet's "not present": the index's answer, kept for the
    // same request until the index changes (a verbose one reads the config
    // blob, and is not kept).
    grpc::Slice answer(resp.SerializeAsString());
    if (!req.verbose()) status_answers_.Put(bytes.view(), generation, answer);
    reply(s, grpc::ByteBuffer(&answer, 1));
    return;
  }
  // Read-your-writes: containerd may have the image before its event
  // reached the mirror. Asked off this thread, within the miss budget;
  // whatever the lookup's outcome, an absent image is "not present".
  const std::string ref = req.image().image();
  misses_->Lookup(ns_, ref,
                  [this, req = std::move(req), reply](cri::MirrorMisses::Outcome o) {
                    cripb::ImageStatusResponse resp;
                    if (o != cri::MirrorMisses::Outcome::kFound) {
                      reply(grpc::Status::OK, Serialized(resp));
                      return;
                    }
                    bool found = false;  // absent after all: "not present", an OK status
                    grpc::Status s = StatusFromIndex(req, &resp, &found);
                    reply(s, s.ok() ? Serialized(resp) : grpc::ByteBuffer());
                  });
}

grpc::Status CriService::ForwardPull(grpc::ServerContext* ctx, const cripb::PullImageRequest* req,
                                     cripb::PullImageResponse* resp) {
  auto up = mirror_->calls().StartForwarded("CRI/PullImage", *ctx, mirror_options_.pull_timeout);
  if (absl::Status s = up->Finish(upstream_cri_->PullImage(up->get(), *req, resp)); !s.ok()) {
    return ToGrpcStatus(s);
  }
  return ToGrpcStatus(mirror_->mirror().SyncPull(ns_, req->image().image(), resp->image_ref()));
}

grpc::Status CriService::PullImage(grpc::ServerContext* ctx, const cripb::PullImageRequest* req,
                                   cripb::PullImageResponse* resp) {
  if (mirror_ != nullptr && upstream_cri_ != nullptr && !req->image().image().empty()) {
    return ForwardPull(ctx, req, resp);
  }
  if (puller_ == nullptr) {
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "this imaged does not pull images");
  }
  if (req->image().image().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "image reference is required");
  }
  const cripb::AuthConfig& a = req->auth();
  absl::StatusOr<cri::Credentials> creds = cri::CredentialsFromAuthConfig(
      a.username(), a.password(), a.auth(), a.identity_token(), a.registry_token());
  if (!creds.ok()) return ToGrpcStatus(creds.status());

  cri::PullRequest pull;
  pull.ns = ns_;
  pull.image = req->image().image();
  pull.creds = *std::move(creds);
  // The pull stops when the caller goes away or the server's drain runs out.
  pull.cancel = CallerGone(ctx);
  absl::StatusOr<cri::PullResult> result = puller_->Pull(pull);
  if (!result.ok()) return ToGrpcStatus(result.status());
  for (const store::ImageCommitter::Written& w : result->written) {
    events_->PublishImageWritten(ns_, w.image, w.existed);
  }
  if (mirror_ != nullptr) {
    // The puller wrote into containerd: answer once the mirror has it.
    if (absl::Status s = mirror_->mirror().SyncImage(ns_, result->Names()); !s.ok()) {
      return ToGrpcStatus(s);
    }
    if (disk_ != nullptr) disk_->Refresh();
  }
  resp->set_image_ref(result->image_id);
  return grpc::Status::OK;
}

grpc::Status CriService::RemoveFromContainerd(const cripb::RemoveImageRequest* req) {
  auto image = images_->ImageStatus(ns_, req->image().image());
  if (!image.ok()) return ToGrpcStatus(image.status());
  if (!image->has_value()) return grpc::Status::OK;
  if (absl::Status s = mirror_->mirror().RemoveUpstream(ns_, (*image)->names); !s.ok()) {
    return ToGrpcStatus(s);
  }
  if (disk_ != nullptr) disk_->Refresh();
  auto removed = images_->RemoveImage(ns_, (*image)->id);
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  for (const std::string& name : *removed) events_->PublishImageDeleted(ns_, name);
  return ToGrpcStatus(AfterDelete(gc_, ns_, /*sync=*/true));
}

grpc::Status CriService::RemoveImage(grpc::ServerContext*, const cripb::RemoveImageRequest* req,
                                     cripb::RemoveImageResponse*) {
  if (mirror_ != nullptr) return RemoveFromContainerd(req);
  auto removed = images_->RemoveImage(ns_, req->image().image());
  if (!removed.ok()) return ToGrpcStatus(removed.status());
  // The same events an Images API delete of each name would publish.
  for (const std::string& name : *removed) events_->PublishImageDeleted(ns_, name);
  // kubelet's image GC removes images to free disk: the space is free when
  // RemoveImage returns.
  if (removed->empty()) return grpc::Status::OK;
  return ToGrpcStatus(AfterDelete(gc_, ns_, /*sync=*/true));
}

grpc::Status CriService::ForwardImageFsInfo(const cripb::ImageFsInfoRequest* req,
                                             cripb::ImageFsInfoResponse* resp) {
  auto call = mirror_->calls().Start("CRI/ImageFsInfo", "");
  absl::Status s = call->Finish(upstream_cri_->ImageFsInfo(call->get(), *req, resp));
  absl::MutexLock lock(&fs_mu_);
  if (s.ok()) {
    last_fs_ = *resp;
    return grpc::Status::OK;
  }
  // kubelet checks ImageFsInfo when it connects and feeds image GC and
  // eviction from it: while containerd does not answer, its last answer.
  if ((absl::IsDeadlineExceeded(s) || absl::IsUnavailable(s)) && last_fs_.has_value()) {
    *resp = *last_fs_;
    return grpc::Status::OK;
  }
  return ToGrpcStatus(s);
}

grpc::Status CriService::ImageFsInfo(grpc::ServerContext*, const cripb::ImageFsInfoRequest* req,
                                     cripb::ImageFsInfoResponse* resp) {
  if (mirror_ != nullptr && upstream_cri_ != nullptr) return ForwardImageFsInfo(req, resp);
  // container_filesystems stays empty, as containerd's CRI leaves it: kubelet
  // then takes the image filesystem to hold containers too (not split).
  auto fs = disk_ != nullptr ? disk_->Last(absl::Seconds(5)) : images_->ImageFsInfo();
  if (!fs.ok()) return ToGrpcStatus(fs.status());
  cripb::FilesystemUsage* usage = resp->add_image_filesystems();
  usage->set_timestamp(fs->measured_at == absl::InfinitePast() ? absl::GetCurrentTimeNanos()
                                                              : absl::ToUnixNanos(fs->measured_at));
  usage->mutable_fs_id()->set_mountpoint(fs->mountpoint);
  usage->mutable_used_bytes()->set_value(static_cast<uint64_t>(fs->used_bytes));
  usage->mutable_inodes_used()->set_value(static_cast<uint64_t>(fs->inodes_used));
  return grpc::Status::OK;
}

}  // namespace imaged::plugin
