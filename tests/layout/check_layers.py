#!/usr/bin/env python3
"""Checks that includes and links follow the layers declared in CMake.

The allowed graph is read, not written down here: every `tw_layer(<name> DEPS ...)` call in
common/CMakeLists.txt declares a folder common/<name>/ and the layers it links (`tw_<dep>`).
A file in common/<name>/ may include headers of its own layer and of every layer reachable
through DEPS (directly or transitively), never one of another common layer and never one of
worker/. worker/ may include anything. So a layer added to CMake is checked without editing
this script, and a folder under common/ that CMake does not declare is reported.

Links: only worker/CMakeLists.txt may name librdkafka or libmicrohttpd (PkgConfig::RDKAFKA,
PkgConfig::MHD), and no file under common/ may include their headers.

Usage: check_layers.py [SOURCE_ROOT]   (default: the repository holding this script)
Exit status 0 when the tree follows the layers, 1 with one line per violation otherwise.
"""
import os
import re
import sys

LAYER_CALL = re.compile(r"\btw_layer\s*\(([^)]*)\)", re.S)
INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*([<"])([^">]+)[">]', re.M)
WORKER_ONLY_LIBS = ("PkgConfig::RDKAFKA", "PkgConfig::MHD")
WORKER_ONLY_HEADERS = ("librdkafka/", "microhttpd.h")
SOURCE_EXTS = (".c", ".h")


def strip_cmake_comments(text):
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def read_layers(root):
    """Returns {layer: set of direct dependency layers} from common/CMakeLists.txt."""
    path = os.path.join(root, "common", "CMakeLists.txt")
    with open(path, encoding="utf-8") as f:
        text = strip_cmake_comments(f.read())
    layers = {}
    for call in LAYER_CALL.finditer(text):
        args = call.group(1).split()
        if not args:
            continue
        name, rest = args[0], args[1:]
        deps = set()
        if "DEPS" in rest:
            for dep in rest[rest.index("DEPS") + 1:]:
                if dep.startswith("tw_"):
                    deps.add(dep[len("tw_"):])
        layers[name] = deps
    return layers


def reachable(layers):
    """Returns {layer: every layer it may include, itself included}."""
    closure = {}
    for start in layers:
        seen, todo = {start}, [start]
        while todo:
            for dep in layers.get(todo.pop(), ()):
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        closure[start] = seen
    return closure


def source_files(folder):
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(SOURCE_EXTS):
                yield os.path.join(dirpath, name)


def line_of(text, offset):
    return text.count("\n", 0, offset) + 1


def check(root):
    problems = []
    common = os.path.join(root, "common")
    worker = os.path.join(root, "worker")
    layers = read_layers(root)
    if not layers:
        return ["common/CMakeLists.txt: no tw_layer() calls found"]
    for layer, deps in sorted(layers.items()):
        for dep in sorted(deps - set(layers)):
            problems.append(f"common/CMakeLists.txt: layer {layer} depends on tw_{dep}, "
                            "which is not a tw_layer()")
    allowed = reachable(layers)
    worker_dirs = {d for d in os.listdir(worker) if os.path.isdir(os.path.join(worker, d))} \
        if os.path.isdir(worker) else set()

    for folder in sorted(os.listdir(common)):
        if os.path.isdir(os.path.join(common, folder)) and folder not in layers:
            problems.append(f"common/{folder}/: not declared with tw_layer() in "
                            "common/CMakeLists.txt (its files are neither built nor checked)")

    for layer in sorted(layers):
        folder = os.path.join(common, layer)
        if not os.path.isdir(folder):
            problems.append(f"common/CMakeLists.txt: tw_layer({layer}) has no folder common/{layer}/")
            continue
        for path in source_files(folder):
            rel = os.path.relpath(path, root)
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                quote, target = m.group(1), m.group(2)
                where = f"{rel}:{line_of(text, m.start())}"
                if quote == "<":
                    if target.startswith(WORKER_ONLY_HEADERS):
                        problems.append(f"{where}: <{target}> is for worker/ only; the "
                                        f"{layer} layer must not use it")
                    continue
                top = target.split("/", 1)[0] if "/" in target else None
                if top is None:
                    continue  # a file next to this one: same layer
                if top in layers:
                    if top not in allowed[layer]:
                        may = ", ".join(sorted(allowed[layer]))
                        problems.append(f'{where}: includes "{target}": layer {layer} may '
                                        f"include only {may} (DEPS in common/CMakeLists.txt)")
                elif top in worker_dirs:
                    problems.append(f'{where}: includes "{target}": common/ never includes '
                                    "worker/")

    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames
                             if not d.startswith((".", "build")) and d != "node_modules")
        if "CMakeLists.txt" not in filenames:
            continue
        path = os.path.join(dirpath, "CMakeLists.txt")
        rel = os.path.relpath(path, root)
        if rel == os.path.join("worker", "CMakeLists.txt"):
            continue
        with open(path, encoding="utf-8") as f:
            text = strip_cmake_comments(f.read())
        for lib in WORKER_ONLY_LIBS:
            for m in re.finditer(re.escape(lib), text):
                problems.append(f"{rel}:{line_of(text, m.start())}: links {lib}: only the worker "
                                "libraries in worker/CMakeLists.txt may")
    return problems


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} layering problem(s)", file=sys.stderr)
        return 1
    layers = read_layers(root)
    print(f"layers ok: {len(layers)} layers in common/, includes and links follow "
          "common/CMakeLists.txt")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
