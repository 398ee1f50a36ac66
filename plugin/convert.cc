#include "plugin/convert.h"

namespace imaged::plugin {

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  const int64_t ns = absl::ToUnixNanos(t);
  int64_t secs = ns / 1000000000;
  int64_t nanos = ns % 1000000000;
  if (nanos < 0) {
    secs -= 1;
    nanos += 1000000000;
  }
  out->set_seconds(secs);
  out->set_nanos(static_cast<int32_t>(nanos));
}

absl::Time FromProto(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

void ToProto(const store::ContentInfo& info, contentpb::Info* out) {
  out->set_digest(info.digest);
  out->set_size(info.size);
  ToProto(info.created_at, out->mutable_created_at());
  ToProto(info.updated_at, out->mutable_updated_at());
  out->mutable_labels()->insert(info.labels.begin(), info.labels.end());
}

store::ContentInfo FromProto(const contentpb::Info& info) {
  store::ContentInfo out;
  out.digest = info.digest();
  out.size = info.size();
  out.created_at = FromProto(info.created_at());
  out.updated_at = FromProto(info.updated_at());
  out.labels.insert(info.labels().begin(), info.labels().end());
  return out;
}

void ToProto(const store::IngestStatus& st, contentpb::Status* out) {
  out->set_ref(st.ref);
  out->set_offset(st.offset);
  out->set_total(st.total);
  out->set_expected(st.expected);
  ToProto(st.started_at, out->mutable_started_at());
  ToProto(st.updated_at, out->mutable_updated_at());
}

store::IngestStatus FromProto(const contentpb::Status& st) {
  return store::IngestStatus{st.ref(),      st.offset(), st.total(), st.expected(),
                             FromProto(st.started_at()), FromProto(st.updated_at())};
}

void ToProto(const store::Descriptor& d, typespb::Descriptor* out) {
  out->set_media_type(d.media_type);
  out->set_digest(d.digest);
  out->set_size(d.size);
  out->mutable_annotations()->insert(d.annotations.begin(), d.annotations.end());
}

store::Descriptor FromProto(const typespb::Descriptor& d) {
  store::Descriptor out;
  out.media_type = d.media_type();
  out.digest = d.digest();
  out.size = d.size();
  out.annotations.insert(d.annotations().begin(), d.annotations().end());
  return out;
}

void ToProto(const store::Image& image, imagespb::Image* out) {
  out->set_name(image.name);
  out->mutable_labels()->insert(image.labels.begin(), image.labels.end());
  ToProto(image.target, out->mutable_target());
  ToProto(image.created_at, out->mutable_created_at());
  ToProto(image.updated_at, out->mutable_updated_at());
}

store::Image FromProto(const imagespb::Image& image) {
  store::Image out;
  out.name = image.name();
  out.labels.insert(image.labels().begin(), image.labels().end());
  out.target = FromProto(image.target());
  out.created_at = FromProto(image.created_at());
  out.updated_at = FromProto(image.updated_at());
  return out;
}

}  // namespace imaged::plugin
