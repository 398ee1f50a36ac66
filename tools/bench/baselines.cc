#include "tools/bench/baselines.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cri/reference.h"
#include "plugin/content_client.h"
#include "plugin/cri_service.h"
#include "store/image_store.h"
#include "store/oci.h"

namespace imaged::bench {
namespace {

namespace imagespb = ::containerd::services::images::v1;

store::CriImage Classified(std::string id, const std::vector<std::string>& names) {
  store::CriImage out;
  out.id = std::move(id);
  out.names = names;
  std::sort(out.names.begin(), out.names.end());
  // A parse of every reference on every call, as containerd's toCRIImage.
  for (const std::string& n : out.names) out.refs.push_back(cri::ClassifyImageName(n));
  return out;
}

}  // namespace

MemoryIndexService::MemoryIndexService(const Dataset& dataset) {
  absl::MutexLock lock(&mu_);
  for (const DatasetImage& d : dataset.images()) {
    Image image;
    image.id = d.id;
    image.references = {d.tag_name, d.digest_name, d.id};
    image.spec = nlohmann::json::parse(d.config.bytes);
    std::vector<std::string> diff_ids;
    for (const auto& id : image.spec["rootfs"]["diff_ids"]) diff_ids.push_back(id.get<std::string>());
    image.chain_id = store::ChainId(diff_ids);
    image.size = static_cast<int64_t>(d.manifest.bytes.size() + d.config.bytes.size());
    for (int k : d.layers) image.size += static_cast<int64_t>(dataset.layers()[k].bytes.size());
    for (const std::string& ref : image.references) ref_cache_[ref] = image.id;
    images_[image.id] = std::move(image);
  }
}

void MemoryIndexService::ToCri(const Image& image, cripb::Image* out) {
  store::CriImage cri = Classified(image.id, image.references);
  cri.size = image.size;
  cri.chain_id = image.chain_id;
  cri.pinned = image.pinned;
  auto user = image.spec.find("config");
  if (user != image.spec.end() && user->contains("User")) {
    store::ImageUser u = store::ParseImageUser((*user)["User"].get<std::string>());
    cri.uid = u.uid;
    cri.username = u.username;
  }
  plugin::ToCriImage(cri, out);
}

std::string MemoryIndexService::Resolve(const std::string& ref) {
  if (cri::IsImageId(ref)) {
    std::string id = absl::StartsWith(ref, "sha256:") ? ref : absl::StrCat("sha256:", ref);
    if (images_.count(id)) return id;
  }
  if (auto normalized = cri::NormalizeImageRef(ref); normalized.ok()) {
    auto it = ref_cache_.find(*normalized);
    if (it != ref_cache_.end()) return it->second;
  }
  std::optional<std::string> prefix = cri::ImageIdPrefix(ref);
  if (!prefix) return "";
  auto it = images_.lower_bound(*prefix);
  if (it == images_.end() || !absl::StartsWith(it->first, *prefix)) return "";
  auto next = std::next(it);
  if (next != images_.end() && absl::StartsWith(next->first, *prefix)) return "";  // ambiguous
  return it->first;
}

grpc::Status MemoryIndexService::ListImages(grpc::ServerContext*, const cripb::ListImagesRequest*,
                                            cripb::ListImagesResponse* resp) {
  // containerd's store.List copies every image out under the read lock.
  std::vector<Image> images;
  {
    absl::ReaderMutexLock lock(&mu_);
    images.reserve(images_.size());
    for (const auto& [id, image] : images_) images.push_back(image);
  }
  for (const Image& image : images) ToCri(image, resp->add_images());
  return grpc::Status::OK;
}

grpc::Status MemoryIndexService::ImageStatus(grpc::ServerContext*, const cripb::ImageStatusRequest* req,
                                             cripb::ImageStatusResponse* resp) {
  Image image;
  {
    absl::ReaderMutexLock lock(&mu_);
    std::string id = Resolve(req->image().image());
    if (id.empty()) return grpc::Status::OK;
    image = images_.at(id);
  }
  ToCri(image, resp->mutable_image());
  return grpc::Status::OK;
}

Pr7061Service::Pr7061Service(std::shared_ptr<grpc::Channel> images, std::string ns, int partitions)
    : stub_(imagespb::Images::NewStub(images)), ns_(std::move(ns)), partitions_(partitions) {}

grpc::Status Pr7061Service::ListRecords(const std::vector<std::string>& filters,
                                        std::vector<Record>* out) {
  imagespb::ListImagesRequest req;
  for (const std::string& f : filters) req.add_filters(f);
  imagespb::ListImagesResponse resp;
  auto ctx = plugin::NamespacedContext(ns_);
  grpc::Status s = stub_->List(ctx.get(), req, &resp);
  if (!s.ok()) return s;
  for (Record& r : *resp.mutable_images()) out->push_back(std::move(r));
  return grpc::Status::OK;
}

void Pr7061Service::Group(std::vector<Record>& records,
                          google::protobuf::RepeatedPtrField<cripb::Image>* out) {
  std::map<std::string, std::vector<const Record*>> by_id;
  for (const Record& r : records) {
    auto id = r.labels().find(store::kLabelImageId);
    if (id != r.labels().end()) by_id[id->second].push_back(&r);
  }
  for (const auto& [id, group] : by_id) {
    std::vector<std::string> names;
    for (const Record* r : group) names.push_back(r->name());
    store::CriImage cri = Classified(id, names);
    const auto& labels = group.front()->labels();
    auto get = [&](const char* key) {
      auto it = labels.find(key);
      return it == labels.end() ? std::string() : it->second;
    };
    cri.size = std::atoll(get(store::kLabelImageSize).c_str());
    cri.chain_id = get(store::kLabelChainId);
    store::ImageUser u = store::ParseImageUser(get(store::kLabelSpecUser));
    cri.uid = u.uid;
    cri.username = u.username;
    for (const Record* r : group) {
      auto p = r->labels().find(store::kLabelPinned);
      cri.pinned = cri.pinned || (p != r->labels().end() && p->second == store::kPinnedValue);
    }
    plugin::ToCriImage(cri, out->Add());
  }
}

grpc::Status Pr7061Service::ListImages(grpc::ServerContext*, const cripb::ListImagesRequest*,
                                       cripb::ListImagesResponse* resp) {
  std::vector<Record> records;
  if (partitions_ <= 1) {
    if (grpc::Status s = ListRecords({}, &records); !s.ok()) return s;
  } else {
    // Partition by the first hex digit(s) of the image ID: each part holds
    // whole groups and stays under the message limit.
    for (int p = 0; p < partitions_; ++p) {
      std::string filter = absl::StrFormat("labels.\"%s\"~=\"^sha256:%x\"", store::kLabelImageId, p);
      if (grpc::Status s = ListRecords({filter}, &records); !s.ok()) return s;
    }
  }
  Group(records, resp->mutable_images());
  return grpc::Status::OK;
}

grpc::Status Pr7061Service::ImageStatus(grpc::ServerContext*, const cripb::ImageStatusRequest* req,
                                        cripb::ImageStatusResponse* resp) {
  const std::string& ref = req->image().image();
  std::string id;
  if (cri::IsImageId(ref)) {
    id = absl::StartsWith(ref, "sha256:") ? ref : absl::StrCat("sha256:", ref);
  } else {
    auto normalized = cri::NormalizeImageRef(ref);
    if (!normalized.ok()) return grpc::Status::OK;
    imagespb::GetImageRequest get;
    get.set_name(*normalized);
    imagespb::GetImageResponse got;
    auto ctx = plugin::NamespacedContext(ns_);
    grpc::Status s = stub_->Get(ctx.get(), get, &got);
    if (s.error_code() == grpc::StatusCode::NOT_FOUND) return grpc::Status::OK;
    if (!s.ok()) return s;
    auto label = got.image().labels().find(store::kLabelImageId);
    if (label == got.image().labels().end()) return grpc::Status::OK;
    id = label->second;
  }
  // Every name of the image: a label-filtered List, which walks every record.
  std::vector<Record> records;
  grpc::Status s =
      ListRecords({absl::StrCat("labels.\"", store::kLabelImageId, "\"==\"", id, "\"")}, &records);
  if (!s.ok()) return s;
  google::protobuf::RepeatedPtrField<cripb::Image> images;
  Group(records, &images);
  if (!images.empty()) *resp->mutable_image() = images[0];
  return grpc::Status::OK;
}

}  // namespace imaged::bench
