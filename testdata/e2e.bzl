"""The end-to-end test rule of testdata/BUILD.bazel."""

def e2e_test(name, tools = [], lib = "//tools/testing:e2e_lib", size = "medium"):
    """`<name>.sh`, given the runfiles paths of `tools` as its arguments.

    The scripts start daemons on unix sockets under /tmp, and containerd
    wants root, so they run outside the sandbox ("local") and one at a time
    ("exclusive"). Each sources `lib` (e2e_lib, or registry_lib, which
    sources e2e_lib) from its runfiles.
    """
    native.sh_test(
        name = name,
        size = size,
        srcs = [name + ".sh"],
        args = ["$(rootpath %s)" % tool for tool in tools],
        data = tools,
        deps = [lib],
        tags = [
            "local",
            "exclusive",
        ],
    )
