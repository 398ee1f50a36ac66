// Conversions between store/ domain types and api/ wire types: the only place
// they meet.
#ifndef IMAGED_PLUGIN_CONVERT_H_
#define IMAGED_PLUGIN_CONVERT_H_

#include <google/protobuf/timestamp.pb.h>

#include "absl/time/time.h"
#include "api/containerd/services/content/v1/content.pb.h"
#include "api/containerd/services/images/v1/images.pb.h"
#include "api/containerd/types/descriptor.pb.h"
#include "store/content_store.h"
#include "store/image_store.h"

namespace imaged::plugin {

namespace contentpb = ::containerd::services::content::v1;
namespace imagespb = ::containerd::services::images::v1;
namespace typespb = ::containerd::types;

void ToProto(absl::Time t, google::protobuf::Timestamp* out);
absl::Time FromProto(const google::protobuf::Timestamp& ts);

void ToProto(const store::ContentInfo& info, contentpb::Info* out);
store::ContentInfo FromProto(const contentpb::Info& info);

void ToProto(const store::IngestStatus& st, contentpb::Status* out);
store::IngestStatus FromProto(const contentpb::Status& st);

void ToProto(const store::Descriptor& d, typespb::Descriptor* out);
store::Descriptor FromProto(const typespb::Descriptor& d);

void ToProto(const store::Image& image, imagespb::Image* out);
store::Image FromProto(const imagespb::Image& image);

// The body of an /images/create or /images/update event (ImageCreate,
// ImageUpdate): the image's name and labels.
template <typename Event>
Event ImageEvent(const store::Image& image) {
  Event e;
  e.set_name(image.name);
  e.mutable_labels()->insert(image.labels.begin(), image.labels.end());
  return e;
}

}  // namespace imaged::plugin

#endif  // IMAGED_PLUGIN_CONVERT_H_
