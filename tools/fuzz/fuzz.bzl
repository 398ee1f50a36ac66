"""imaged_fuzzer: one libFuzzer target, and a test that replays its corpus."""

def imaged_fuzzer(name, srcs, deps = []):
    """`<name>`: the target (libFuzzer with --config=fuzz, else a replay main);
    `<name>_replay_test`: runs every input in testdata/fuzz/<name>/ (CI)."""
    native.cc_binary(
        name = name,
        srcs = srcs,
        deps = deps + select({
            ":fuzzing": [],
            "//conditions:default": [":fuzz_main"],
        }),
        linkopts = select({
            ":fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        visibility = ["//visibility:private"],
    )
    native.cc_test(
        name = name + "_replay_test",
        srcs = srcs,
        deps = deps + [":fuzz_main"],
        args = ["testdata/fuzz/" + name],
        data = ["//testdata:fuzz_corpora"],
    )
