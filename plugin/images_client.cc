#include "plugin/images_client.h"

#include "plugin/content_client.h"
#include "plugin/convert.h"
#include "plugin/grpc_status.h"
#include "plugin/namespaces.h"

namespace imaged::plugin {

RemoteImageStore::RemoteImageStore(std::shared_ptr<grpc::Channel> channel, UpstreamCalls* calls)
    : stub_(imagespb::Images::NewStub(std::move(channel))),
      calls_(calls != nullptr ? calls : UpstreamCalls::Unbounded()) {}

absl::StatusOr<store::Image> RemoteImageStore::Get(absl::string_view ns, absl::string_view name) {
  imagespb::GetImageRequest req;
  req.set_name(std::string(name));
  imagespb::GetImageResponse resp;
  auto call = calls_->Start("Images/Get", ns);
  if (absl::Status s = call->Finish(stub_->Get(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.image());
}

absl::StatusOr<std::vector<store::Image>> RemoteImageStore::List(
    absl::string_view ns, absl::Span<const std::string> filters) {
  imagespb::ListImagesRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  imagespb::ListImagesResponse resp;
  auto call = calls_->Start("Images/List", ns, UpstreamCalls::Kind::kList);
  if (absl::Status s = call->Finish(stub_->List(call->get(), req, &resp)); !s.ok()) return s;
  std::vector<store::Image> out;
  for (const imagespb::Image& i : resp.images()) out.push_back(FromProto(i));
  return out;
}

absl::StatusOr<store::Image> RemoteImageStore::Create(absl::string_view ns,
                                                      const store::Image& image,
                                                      absl::string_view lease,
                                                      std::optional<absl::Time> timestamp) {
  imagespb::CreateImageRequest req;
  ToProto(image, req.mutable_image());
  if (timestamp) ToProto(*timestamp, req.mutable_source_date_epoch());
  imagespb::CreateImageResponse resp;
  auto call = calls_->Start("Images/Create", ns);
  if (!lease.empty()) call->get()->AddMetadata(kLeaseHeader, std::string(lease));
  if (absl::Status s = call->Finish(stub_->Create(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.image());
}

absl::StatusOr<store::Image> RemoteImageStore::Update(absl::string_view ns,
                                                      const store::Image& image,
                                                      absl::Span<const std::string> fieldpaths,
                                                      absl::string_view lease,
                                                      std::optional<absl::Time> timestamp) {
  imagespb::UpdateImageRequest req;
  ToProto(image, req.mutable_image());
  if (timestamp) ToProto(*timestamp, req.mutable_source_date_epoch());
  for (const std::string& p : fieldpaths) req.mutable_update_mask()->add_paths(p);
  imagespb::UpdateImageResponse resp;
  auto call = calls_->Start("Images/Update", ns);
  if (!lease.empty()) call->get()->AddMetadata(kLeaseHeader, std::string(lease));
  if (absl::Status s = call->Finish(stub_->Update(call->get(), req, &resp)); !s.ok()) return s;
  return FromProto(resp.image());
}

absl::Status RemoteImageStore::DeleteSync(absl::string_view ns, absl::string_view name) {
  imagespb::DeleteImageRequest req;
  req.set_name(std::string(name));
  req.set_sync(true);
  google::protobuf::Empty resp;
  auto call = calls_->Start("Images/Delete", ns, UpstreamCalls::Kind::kList);
  return call->Finish(stub_->Delete(call->get(), req, &resp));
}

absl::StatusOr<std::vector<store::ImageCommitter::Written>> RemoteImageCommitter::Commit(
    absl::string_view ns, const store::ImageCommit& commit, absl::string_view lease) {
  for (const auto& [digest, labels] : commit.blob_labels) {
    store::ContentInfo info;
    info.digest = digest;
    info.labels = labels;
    std::vector<std::string> paths;
    for (const auto& [k, v] : labels) paths.push_back("labels." + k);
    if (auto u = content_->Update(ns, info, paths); !u.ok()) return u.status();
  }
  std::vector<Written> out;
  for (const store::Image& image : commit.images) {
    absl::StatusOr<store::Image> have = images_->Get(ns, image.name);
    if (!have.ok() && !absl::IsNotFound(have.status())) return have.status();
    if (have.ok()) {
      std::vector<std::string> paths = {"target"};
      if (commit.replace_labels) {
        paths.push_back("labels");
      } else {
        for (const auto& [k, v] : image.labels) paths.push_back("labels." + k);
      }
      absl::StatusOr<store::Image> updated = images_->Update(ns, image, paths, lease);
      if (!updated.ok()) return updated.status();
      out.push_back(Written{*std::move(updated), true});
    } else {
      absl::StatusOr<store::Image> created = images_->Create(ns, image, lease);
      if (absl::IsAlreadyExists(created.status())) {  // raced with another writer
        created = images_->Update(ns, image, {"target", "labels"}, lease);
      }
      if (!created.ok()) return created.status();
      out.push_back(Written{*std::move(created), false});
    }
  }
  for (const std::string& name : commit.deletes) {
    absl::Status s = images_->Delete(ns, name);
    if (!s.ok() && !absl::IsNotFound(s)) return s;
  }
  return out;
}

absl::Status RemoteImageStore::Delete(absl::string_view ns, absl::string_view name,
                                      absl::string_view target_digest) {
  imagespb::DeleteImageRequest req;
  req.set_name(std::string(name));
  if (!target_digest.empty()) req.mutable_target()->set_digest(std::string(target_digest));
  google::protobuf::Empty resp;
  auto call = calls_->Start("Images/Delete", ns);
  return call->Finish(stub_->Delete(call->get(), req, &resp));
}

}  // namespace imaged::plugin
