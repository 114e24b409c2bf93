#!/usr/bin/env python3
"""Self test of check_layers.py: it runs the checker on small synthetic trees and expects it to
pass the well-layered one and fail each broken one with a message naming the file and line.
Without this, a checker that finds nothing (a regex that never matches) would pass forever."""
import os
import subprocess
import sys
import tempfile

CHECKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check_layers.py")

COMMON_CMAKE = """\
# comments are ignored: tw_layer(ghost DEPS tw_high)
tw_layer(util DEPS PkgConfig::JANSSON m)
tw_layer(low DEPS tw_util)
tw_layer(high
  DEPS tw_low PkgConfig::YAML)
{extra}
"""

GOOD_FILES = {
    "common/util/u.h": "#include <stdint.h>\n",
    "common/util/u.c": '#include "util/u.h"\n',
    "common/low/low.h": '#include "util/u.h"\n',
    "common/low/low.c": '#include "low/low.h"\n#include "low_private.h"\n',
    "common/low/low_private.h": "",
    # util is reachable from high through low only: transitive dependencies are allowed
    "common/high/high.c": '#include "high/high.h"\n#include "util/u.h"\n#include "low/low.h"\n',
    "common/high/high.h": "",
    "worker/CMakeLists.txt": "target_link_libraries(tw_kafka PUBLIC tw_high PkgConfig::RDKAFKA)\n"
                             "target_link_libraries(tw_http PUBLIC PkgConfig::MHD)\n",
    "worker/kafka/k.h": "",
    "worker/kafka/k.c": '#include <librdkafka/rdkafka.h>\n#include "high/high.h"\n'
                        '#include "kafka/k.h"\n',
    "CMakeLists.txt": "pkg_check_modules(RDKAFKA REQUIRED IMPORTED_TARGET rdkafka)\n",
}


def write_tree(root, files, extra_cmake=""):
    files = dict(files)
    files["common/CMakeLists.txt"] = COMMON_CMAKE.format(extra=extra_cmake)
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def run_checker(files, extra_cmake=""):
    with tempfile.TemporaryDirectory(prefix="tw-layers-") as root:
        write_tree(root, files, extra_cmake)
        res = subprocess.run([sys.executable, CHECKER, root], capture_output=True, text=True,
                             timeout=60)
        return res.returncode, res.stdout + res.stderr


CASES = [
    # (name, changed files, extra CMake, expected exit status, text the output must contain)
    ("well-layered tree passes", {}, "", 0, "layers ok: 3 layers"),
    ("a lower layer includes a higher one",
     {"common/low/low.c": '#include "low/low.h"\n\n#include "high/high.h"\n'}, "", 1,
     'common/low/low.c:3: includes "high/high.h": layer low may include only low, util'),
    ("common includes worker",
     {"common/util/u.c": '#include "kafka/k.h"\n'}, "", 1,
     'common/util/u.c:1: includes "kafka/k.h": common/ never includes worker/'),
    ("a common layer links librdkafka", {}, "tw_layer(net DEPS tw_util PkgConfig::RDKAFKA)", 1,
     "common/CMakeLists.txt:6: links PkgConfig::RDKAFKA"),
    ("a test links libmicrohttpd",
     {"tests/CMakeLists.txt": "target_link_libraries(t PRIVATE PkgConfig::MHD)\n"}, "", 1,
     "tests/CMakeLists.txt:1: links PkgConfig::MHD"),
    ("a common file includes the librdkafka header",
     {"common/high/high.c": '#include <librdkafka/rdkafka.h>\n'}, "", 1,
     "common/high/high.c:1: <librdkafka/rdkafka.h> is for worker/ only"),
    ("a folder under common/ that CMake does not declare",
     {"common/extra/e.c": '#include "util/u.h"\n'}, "", 1,
     "common/extra/: not declared with tw_layer()"),
    ("a layer added to CMake is checked without editing the checker",
     {"common/extra/e.c": '#include "util/u.h"\n#include "high/high.h"\n'},
     "tw_layer(extra DEPS tw_util)", 1,
     'common/extra/e.c:2: includes "high/high.h": layer extra may include only extra, util'),
    ("a dependency on an undeclared layer",
     {}, "tw_layer(extra DEPS tw_nowhere)", 1,
     "layer extra depends on tw_nowhere, which is not a tw_layer()"),
]


def main():
    failures = 0
    for name, changes, extra, want_rc, want_text in CASES:
        files = dict(GOOD_FILES)
        files.update(changes)
        rc, out = run_checker(files, extra)
        ok = rc == want_rc and want_text in out
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
        if not ok:
            failures += 1
            print(f"  expected exit {want_rc} and {want_text!r}; got exit {rc}:")
            print("  " + out.replace("\n", "\n  "))
    print(f"{len(CASES) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
