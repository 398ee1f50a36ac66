"""api_proto: C++ (and optionally gRPC) code from one .proto with Debian's protoc.

Protos are compiled from the workspace root, so `import "api/..."` paths and
`#include "api/....pb.h"` paths are the same. The filegroup `<name>_protos`
carries a proto and everything it imports, so protoc sees the whole closure.
"""

def api_proto(name, src, deps = [], grpc = False, visibility = None):
    base = src[:-len(".proto")]
    hdrs = [base + ".pb.h"]
    srcs = [base + ".pb.cc"]
    if grpc:
        hdrs.append(base + ".grpc.pb.h")
        srcs.append(base + ".grpc.pb.cc")

    native.filegroup(
        name = name + "_protos",
        srcs = [src] + [d + "_protos" for d in deps],
        visibility = visibility,
    )

    grpc_flags = ""
    if grpc:
        grpc_flags = "--grpc_out=$(GENDIR) --plugin=protoc-gen-grpc=/usr/bin/grpc_cpp_plugin "
    native.genrule(
        name = name + "_gen",
        srcs = [name + "_protos"],
        outs = hdrs + srcs,
        cmd = ("/usr/bin/protoc -I. -I/usr/include --cpp_out=$(GENDIR) " + grpc_flags +
               "$(location " + src + ")"),
        tools = [src],
    )

    native.cc_library(
        name = name,
        srcs = srcs,
        hdrs = hdrs,
        deps = deps + ["@protobuf"] + (["@grpc"] if grpc else []),
        visibility = visibility,
    )
