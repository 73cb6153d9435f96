#!/usr/bin/python3
"""Checks that the core library compiles to the same program as a unity build as file by file.

CMake's unity build (AIM_UNITY_BUILD, on by default) pastes up to 16 of src/'s .cpp files into
one translation unit. What one file declares for itself alone is then seen by the files after
it, and where a name is reused the result is either a compile error (the lucky case) or a
*silent* change: a call that resolved to this file's helper now picks another file's overload,
or a name in an inner namespace hides the outer one a later file meant. Which files share a
batch changes whenever a file is added, so the rule is global:

  1. A name a .cpp file keeps to itself (anonymous namespace, `static`, or a namespace-scope
     variable) is used by no other .cpp file for its own, and is declared by no header.
  2. A macro a .cpp file #defines appears in no other source file.
  3. A .cpp file has no namespace-scope `using namespace` (it would apply to the files after
     it); put it inside the functions that need it.

Reads the sources with Universal Ctags. Prints each offence and exits 1; run by CTest
(Unity.FileLocalNamesAreUnique; exit 77, a skip, where ctags is missing and the test
dependencies are not required). Given the test suite's unity groups (build/tests/unity_groups.tsv),
it also checks that each group holds files with the same namespace-scope `using` lines.
Usage: scripts/check_unity_names.py [repository root] [build/tests/unity_groups.tsv]
"""
import collections
import json
import os
import re
import subprocess
import sys

root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
os.chdir(root)

try:
    out = subprocess.run(["ctags", "--output-format=json", "--fields=+nKZsSE", "-R", "-f", "-", "src", "include", "tests"],
                         check=True, capture_output=True, text=True).stdout
except FileNotFoundError:
    print("check_unity_names: needs Universal Ctags (Debian package universal-ctags; scripts/setup.sh installs it)")
    # Like the GoogleTest cases: a skip (CTest's SKIP_RETURN_CODE) where the dependency may be
    # absent, a failure where scripts/test.sh (or CI) promised every test dependency.
    required = os.environ.get("CI") == "true" or os.environ.get("AIM_TESTS_REQUIRE_DEPS") == "1"
    sys.exit(1 if required else 77)

# Kinds that live in a namespace (members, locals and parameters are scoped by their class or function).
NAMESPACE_KINDS = {"function", "prototype", "variable", "externvar", "class", "struct", "union", "enum", "typedef"}
tags = [json.loads(line) for line in out.splitlines() if line.startswith("{")]

sources = {}
for base in ("src", "include", "tools", "tests"):
    for d, _, names in os.walk(base):
        for n in names:
            if n.endswith((".cpp", ".h")):
                p = os.path.join(d, n)
                sources[p] = open(p, encoding="utf-8", errors="replace").read()


def check_target(label, cpp_dir, header_dirs, forbid_using):
    """One unity target: the .cpp files under cpp_dir, and the headers they see (header_dirs)."""
    local = collections.defaultdict(set)  # name -> .cpp files that keep it to themselves
    declared = collections.defaultdict(set)  # name -> files that declare it for others
    macros = collections.defaultdict(set)  # name -> .cpp files that #define it
    for t in tags:
        path, name, kind = t["path"], t["name"], t["kind"]
        if not path.endswith((".cpp", ".h")):
            continue  # ctags also reads the Python scripts beside the tests
        mine = path.startswith(cpp_dir + "/")
        if not mine and not any(path.startswith(h + "/") and path.endswith(".h") for h in header_dirs):
            continue
        if kind == "macro":
            if mine and path.endswith(".cpp"):
                macros[name].add(path)
            continue
        if kind not in NAMESPACE_KINDS or t.get("scopeKind", "namespace") != "namespace":
            continue
        if "::" in name or name.startswith("__anon"):
            continue  # qualified out-of-class definitions (Foo::bar) belong to their class
        if kind == "function" and re.fullmatch(r"[A-Z_]+", name):
            continue  # a macro's invocation that ctags reads as a function (GoogleTest's TEST)
        scope = t.get("scope", "")
        file_local = path.endswith(".cpp") and ("__anon" in scope or t.get("file", False) or kind == "variable")
        (local if file_local else declared)[name].add(path)

    problems = []
    for name, files in sorted(local.items()):
        others = declared.get(name, set()) - files
        if len(files) > 1:
            problems.append(f"'{name}' is kept file-local by {len(files)} files: {', '.join(sorted(files))}")
        if others:
            problems.append(f"'{name}' (file-local in {', '.join(sorted(files))}) is also declared in "
                            f"{', '.join(sorted(others))}")
    for name, files in sorted(macros.items()):
        word = re.compile(r"\b" + re.escape(name) + r"\b")
        users = sorted(p for p, text in sources.items() if p not in files and word.search(text))
        if len(files) > 1 or users:
            problems.append(f"macro {name} (defined in {', '.join(sorted(files))}) also appears in "
                            f"{', '.join(users or sorted(files))}")
    if forbid_using:
        for path, text in sorted(sources.items()):
            if not path.endswith(".cpp") or not path.startswith(cpp_dir + "/"):
                continue
            for i, line in enumerate(text.splitlines(), 1):
                if re.match(r"using\s+namespace\s", line):  # column 0: namespace scope in this code's style
                    problems.append(f"{path}:{i}: namespace-scope '{line.strip()}' reaches the files after it in a "
                                    "unity batch")
    summary = (f"{label}: {sum(len(f) for f in local.values())} file-local names, none shared; "
               f"{len(macros)} file-local macros, none used elsewhere")
    return problems, summary


# The library: any file may share a batch with any other, so no namespace-scope using-directive.
# The test suite: CMake groups its files by folder and by their namespace-scope `using` lines
# (tests/CMakeLists.txt), so a file only ever follows files with the same directives.
problems, summaries = [], []
for label, cpp_dir, headers, forbid_using in (("src/", "src", ("src", "include"), True),
                                              ("tests/", "tests", ("tests", "include"), False)):
    p, summary = check_target(label, cpp_dir, headers, forbid_using)
    problems += p
    summaries.append(summary)

# With the suite's unity groups (tests/CMakeLists.txt writes them at configure time, one
# "group<TAB>file" line per test file): each group must hold files whose namespace-scope `using`
# lines are the same.
if len(sys.argv) > 2 and os.path.isfile(sys.argv[2]):
    groups = collections.defaultdict(list)
    for line in open(sys.argv[2]).read().splitlines():
        if "\t" in line:
            group, path = line.split("\t", 1)
            groups[group].append(path)
    for group, members in sorted(groups.items()):
        keys = collections.defaultdict(list)
        for m in members:
            lines = open(m, encoding="utf-8", errors="replace").read().splitlines()
            keys[tuple(l for l in lines if re.match(r"using\s", l) and not re.match(r"using\s+\w+\s*=", l))].append(
                os.path.relpath(m))
        if len(keys) > 1:
            problems.append(f"unity group {group} mixes files with different `using` lines: " +
                            "; ".join(f"{', '.join(f)} ({' '.join(k) or 'none'})" for k, f in keys.items()))
    summaries.append(f"{len(groups)} unity groups of the suite, each one set of `using` lines")

for p in problems:
    print("check_unity_names: " + p)
if problems:
    print(f"check_unity_names: {len(problems)} problem(s); rename the file-local names (or give a shared helper "
          "one home in a header), so a unity build cannot merge or hide them")
    sys.exit(1)
print("check_unity_names: " + "; ".join(summaries))
