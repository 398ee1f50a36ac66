"""A repository rule that exposes LLVM's <fuzzer/FuzzedDataProvider.h>.

The header comes with Debian's libclang-rt-14-dev (tools/install_deps.sh),
inside clang's resource directory, which must not be put on gcc's include
path whole (it holds clang's own stddef.h...). The repository links just
that one header, so the service fuzz harness builds with gcc (the replay
tests) and with clang (--config=fuzz).
"""

def _fuzzed_data_provider_impl(ctx):
    clang = ctx.which("clang-14")
    if clang == None:
        fail("clang-14 not found: run tools/install_deps.sh")
    resource_dir = ctx.execute([clang, "-print-resource-dir"]).stdout.strip()
    header = ctx.path(resource_dir + "/include/fuzzer/FuzzedDataProvider.h")
    if not header.exists:
        fail("%s not found: run tools/install_deps.sh (libclang-rt-14-dev)" % header)
    ctx.symlink(header, "fuzzer/FuzzedDataProvider.h")
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", """
cc_library(
    name = "{name}",
    hdrs = ["fuzzer/FuzzedDataProvider.h"],
    includes = ["."],
    visibility = ["//visibility:public"],
)
""".format(name = ctx.name))

fuzzed_data_provider = repository_rule(
    implementation = _fuzzed_data_provider_impl,
    local = True,
)
