"""Fuzz targets: one macro call makes a libFuzzer binary and its replay test.

    load("//tests:fuzz.bzl", "ringstore_fuzz_test")

    ringstore_fuzz_test(
        name = "path_fuzz",
        srcs = ["path_fuzz.cc"],
        deps = [":path"],
    )

`srcs` define `extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t)`
and, if they need one-time set-up, `LLVMFuzzerInitialize(int*, char***)`;
they report a broken property with FUZZ_CHECK (tests/fuzz_check.h), which
aborts; tests/fuzz_input.h reads structured values from the bytes. The
seed corpus is every file in fuzz_corpus/<name>/ beside the BUILD file
(or the files given as `corpus`). The macro makes:

  <name>         a cc_test that runs every corpus file through the target
                 once (tests/fuzz_replay_main.cc): part of `bazel test //...`
                 under every compiler and config, so an input added to the
                 corpus stays tested forever.
  <name>_fuzzer  the libFuzzer binary, tagged "manual" and "fuzzer":
                 `bazel build --config=fuzz //storage:path_fuzz_fuzzer`
                 (clang-14, ASan + UBSan + coverage; .bazelrc). Built without
                 --config=fuzz it is the replay driver again.
  <name>_corpus  a filegroup of the seed corpus (tests/run_all.sh copies it).

Other arguments (tags, timeout, ...) go to the cc_test.
"""

def ringstore_fuzz_test(name, srcs, deps = [], corpus = None, size = "small", **kwargs):
    if corpus == None:
        corpus = native.glob(["fuzz_corpus/%s/**" % name])
    native.filegroup(
        name = name + "_corpus",
        srcs = corpus,
        testonly = True,
        visibility = ["//visibility:public"],
    )

    # Compiled once, linked into both binaries; alwayslink because only the
    # driver (libFuzzer's or ours) refers to LLVMFuzzerTestOneInput.
    native.cc_library(
        name = name + "_lib",
        srcs = srcs,
        deps = deps + ["//tests:fuzz_support"],
        testonly = True,
        alwayslink = True,
    )
    native.cc_test(
        name = name,
        size = size,
        args = ["$(locations :%s_corpus)" % name],
        data = [":%s_corpus" % name, "//tests:tsan_suppressions.txt"],
        deps = [":%s_lib" % name, "//tests:fuzz_replay_main"],
        **kwargs
    )
    native.cc_binary(
        name = name + "_fuzzer",
        testonly = True,
        tags = ["manual", "fuzzer"],
        linkopts = select({
            "//tests:fuzz_build": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        deps = [":%s_lib" % name] + select({
            "//tests:fuzz_build": [],
            "//conditions:default": ["//tests:fuzz_replay_main"],
        }),
    )
