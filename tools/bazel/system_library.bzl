"""A repository rule that wraps a library installed from Debian's -dev packages.

Headers live in /usr/include, which the autodetected C++ toolchain already
searches, so the generated cc_library carries only the link options that
`pkg-config --libs` reports (plus `--cflags` defines, if any).
"""

def _system_library_impl(ctx):
    pkg_config = ctx.which("pkg-config")
    if pkg_config == None:
        fail("pkg-config not found: run tools/install_deps.sh")
    result = ctx.execute([pkg_config, "--libs"] + ctx.attr.modules)
    if result.return_code != 0:
        fail("pkg-config --libs %s failed (run tools/install_deps.sh): %s" %
             (" ".join(ctx.attr.modules), result.stderr))
    linkopts = result.stdout.strip().split(" ") + ctx.attr.extra_libs
    linkopts = [o for o in linkopts if o]
    cflags = ctx.execute([pkg_config, "--cflags-only-other"] + ctx.attr.modules).stdout.strip()
    defines = [f[2:] for f in cflags.split(" ") if f.startswith("-D")]
    ctx.file("WORKSPACE", "workspace(name = \"%s\")\n" % ctx.name)
    ctx.file("BUILD.bazel", """
cc_library(
    name = "{name}",
    linkopts = {linkopts},
    defines = {defines},
    visibility = {visibility},
)
""".format(
        name = ctx.name,
        linkopts = repr(linkopts),
        defines = repr(defines),
        visibility = repr(ctx.attr.visible_to),
    ))

system_library = repository_rule(
    implementation = _system_library_impl,
    attrs = {
        "modules": attr.string_list(mandatory = True),
        "extra_libs": attr.string_list(default = []),
        # Who may depend on the library: how Bazel keeps the layering
        # (RocksDB only below plugin/, gRPC never in store/ or cri/).
        "visible_to": attr.string_list(default = ["//visibility:public"]),
    },
    environ = ["PKG_CONFIG_PATH"],
    local = True,
)
