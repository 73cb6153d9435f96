#!/usr/bin/env bash
# The mutation check: each patch in tests/mutations/ is a small plausible bug; applied to a
# scratch copy of this working tree, it must make at least one of the tests it names fail.
# Reports killed / survived per mutation and exits non-zero if any survived, no longer
# applies, does not build, or names no test that exists. Runs on demand, not in CI.
#
#   bash scripts/check_mutations.sh                 # every mutation
#   bash scripts/check_mutations.sh lora-merge ...  # those whose file name contains a word
#   bash scripts/check_mutations.sh --list          # the mutations and the tests they name
#   bash scripts/check_mutations.sh --no-baseline   # skip running the named tests unmutated first
#
# The scratch copy is a snapshot of the working tree (uncommitted changes included, ignored
# files not) in ${AIM_MUTATION_DIR:-build/mutations}/tree, a git repository of its own that
# borrows this one's objects; its build folder (tree/build, the same relative paths as a
# checkout's own build/, so ccache serves both) is kept between runs, so each mutation
# rebuilds only the files it touches (and the restored ones, from ccache), with
# ${AIM_JOBS:-nproc} jobs. The named tests run with AIM_TESTS_REQUIRE_DEPS=1, each mutation's
# under a limit of ${AIM_MUTATION_TIMEOUT:-1800} s (a hang counts as killed, and says so),
# stopping at the first failure unless AIM_MUTATION_ALL_TESTS=1.
# Logs: …/logs/<mutation>.log; the summary table: …/summary.md. Format: tests/mutations/README.md.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
work=${AIM_MUTATION_DIR:-build/mutations}
mkdir -p "$work"
work=$(cd "$work" && pwd)
tree="$work/tree" build="$work/tree/build" logs="$work/logs"
jobs=${AIM_JOBS:-$(nproc)}
limit=${AIM_MUTATION_TIMEOUT:-1800}
# The first failing test kills a mutation, so the others are skipped (--gtest_fail_fast);
# AIM_MUTATION_ALL_TESTS=1 runs every named test, to see each one kill it.
fail_fast=--gtest_fail_fast
[[ "${AIM_MUTATION_ALL_TESTS:-0}" == 1 ]] && fail_fast=

baseline=1 list=0 words=()
for a in "$@"; do
  case "$a" in
    --no-baseline) baseline=0 ;;
    --list) list=1 ;;
    -h|--help) awk 'NR > 1 && /^set -euo/ { exit } NR > 1' "$0"; exit 0 ;;
    -*) echo "check_mutations: unknown option $a" >&2; exit 2 ;;
    *) words+=("$a") ;;
  esac
done

# --- the mutations and their headers -------------------------------------------------------
# Header lines come before the diff: "Mutation: <what the bug is>", one or more
# "Tests: <gtest patterns, ':'-separated>" (joined with ':'; positive patterns only, so that
# several mutations' names can be joined for the baseline) and/or "CTest: <ctest -R regex>".
header() {  # header FILE KEY -> the values of KEY, one per line
  sed -n '/^diff --git /q; p' "$1" | sed -n "s/^$2:[[:space:]]*//p"
}
gtest_filter_of() { header "$1" Tests | paste -sd: -; }

patches=()
for f in tests/mutations/*.patch; do
  [[ -e "$f" ]] || continue
  name=$(basename "$f" .patch)
  if ((${#words[@]})); then
    keep=0
    for w in "${words[@]}"; do [[ "$name" == *"$w"* ]] && keep=1; done
    ((keep)) || continue
  fi
  patches+=("$f")
done
if ((${#patches[@]} == 0)); then
  echo "check_mutations: no mutation in tests/mutations/ matches ${words[*]:-anything}" >&2
  exit 2
fi
for f in "${patches[@]}"; do
  if [[ -z "$(header "$f" Mutation)" ]] || [[ -z "$(header "$f" Tests)$(header "$f" CTest)" ]]; then
    echo "check_mutations: $f needs a 'Mutation:' line and at least one 'Tests:' or 'CTest:' line before the diff" >&2
    exit 2
  fi
  grep -q '^diff --git ' "$f" || { echo "check_mutations: $f holds no 'diff --git' patch" >&2; exit 2; }
  if gtest_filter_of "$f" | grep -q -- '-'; then
    echo "check_mutations: $f: 'Tests:' takes test names and wildcards only (no '-' exclusions)" >&2
    exit 2
  fi
done
if ((list)); then
  for f in "${patches[@]}"; do
    printf '%s\n  %s\n' "$(basename "$f" .patch)" "$(header "$f" Mutation)"
    [[ -n "$(gtest_filter_of "$f")" ]] && printf '  gtest: %s\n' "$(gtest_filter_of "$f")"
    header "$f" CTest | sed 's/^/  ctest -R: /'
  done
  exit 0
fi

# --- the scratch copy ----------------------------------------------------------------------
# A snapshot commit of the working tree, written with a private index (neither this
# checkout's index nor any ref changes), checked out in the scratch repository. `reset
# --hard` rewrites only the files that differ, so the build stays incremental.
snapshot() {
  local idx
  idx=$(mktemp)
  cp "$(git rev-parse --git-path index)" "$idx"
  GIT_INDEX_FILE="$idx" git add -A
  local t
  t=$(GIT_INDEX_FILE="$idx" git write-tree)
  rm -f "$idx"
  GIT_AUTHOR_NAME=mutations GIT_AUTHOR_EMAIL=mutations@localhost GIT_COMMITTER_NAME=mutations \
    GIT_COMMITTER_EMAIL=mutations@localhost git commit-tree "$t" -m "mutation check snapshot"
}
commit=$(snapshot)
if [[ ! -d "$tree/.git" ]]; then
  mkdir -p "$tree"
  git -C "$tree" init -q
fi
objects=$(cd "$(git rev-parse --git-common-dir)/objects" && pwd)
echo "$objects" > "$tree/.git/objects/info/alternates"
restore() {
  git -C "$tree" reset -q --hard "$commit"
  git -C "$tree" clean -fdq
}

# The scratch tree builds the library file by file (AIM_UNITY_BUILD=OFF): a mutation touches one
# file, and a unity build would recompile that file's whole batch for each (~1 min, not ~10 s).
# That the unity build compiles the same program is Unity.FileLocalNamesAreUnique's to show.
build_tree() {  # build_tree LOG
  (cd "$tree" && AIM_BUILD_DIR="$build" AIM_JOBS="$jobs" AIM_CMAKE_ARGS="-DAIM_UNITY_BUILD=OFF ${AIM_CMAKE_ARGS:-}" \
     bash scripts/build.sh aim_tests) >>"$1" 2>&1
}

# The names (gtest patterns, ctest regexes) that select no test: renamed or removed tests.
missing_names() {  # missing_names FILTER CTEST_REGEXES
  local pat re
  for pat in ${1//:/ }; do
    "$build/bin/aim_tests" --gtest_list_tests --gtest_filter="$pat" | grep -q '^  ' || echo "$pat"
  done
  while IFS= read -r re; do
    [[ -z "$re" ]] && continue
    [[ "$(cd "$build" && ctest -N -R "$re" | sed -n 's/^Total Tests: //p')" != 0 ]] || echo "ctest -R $re"
  done <<<"$2"
}

# How many tests a filter and ctest regexes select.
count_tests() {  # count_tests FILTER CTEST_REGEXES
  local n=0 re
  if [[ -n "$1" ]]; then
    n=$("$build/bin/aim_tests" --gtest_list_tests --gtest_filter="$1" | grep -c '^  ' || true)
  fi
  while IFS= read -r re; do
    [[ -z "$re" ]] && continue
    n=$((n + $(cd "$build" && ctest -N -R "$re" | sed -n 's/^Total Tests: //p')))
  done <<<"$2"
  echo "$n"
}

# Runs the tests; returns 0 if all passed, 1 if any failed, 124 on the time limit. With
# FAIL_FAST=--gtest_fail_fast the first failure ends the run: it kills the mutation, and the
# other tests would only cost time.
run_tests() {  # run_tests FILTER CTEST_REGEXES LOG [FAIL_FAST]
  local re status=0
  export AIM_TESTS_REQUIRE_DEPS=1
  if [[ -n "$1" ]]; then
    timeout -k 30 "$limit" "$build/bin/aim_tests" --gtest_filter="$1" ${4:-} >>"$3" 2>&1 || status=$?
  fi
  while IFS= read -r re; do
    [[ -z "$re" || $status -ne 0 ]] && continue
    (cd "$build" && timeout -k 30 "$limit" ctest --output-on-failure -R "$re") >>"$3" 2>&1 || status=$?
  done <<<"$2"
  if ((status == 124 || status == 137)); then return 124; fi
  ((status == 0)) && return 0 || return 1
}

mkdir -p "$logs"
rm -f "$logs"/*.log
restore
echo "check_mutations: snapshot $commit in $tree; building ($jobs jobs) ..."
if ! build_tree "$logs/baseline.log"; then
  echo "check_mutations: the unmutated tree does not build; see $logs/baseline.log" >&2
  exit 2
fi
if ((baseline)); then
  # The named tests must pass unmutated, or a 'killed' below would prove nothing.
  all=$(for f in "${patches[@]}"; do gtest_filter_of "$f"; done | tr ':' '\n' | sed '/^$/d' | sort -u | paste -sd: -)
  ctests=$(for f in "${patches[@]}"; do header "$f" CTest; done | sort -u)
  missing=$(missing_names "$all" "$ctests" | paste -sd' ' -)
  if [[ -n "$missing" ]]; then
    echo "check_mutations: no test matches: $missing (renamed or removed? update the mutation's header)" >&2
    exit 2
  fi
  echo "check_mutations: baseline: $(count_tests "$all" "$ctests") named tests on the unmutated tree ..."
  start=$SECONDS
  if ! run_tests "$all" "$ctests" "$logs/baseline.log"; then
    echo "check_mutations: the named tests fail without any mutation; see $logs/baseline.log" >&2
    exit 2
  fi
  echo "check_mutations: baseline passed in $((SECONDS - start)) s"
fi

# --- one mutation at a time ----------------------------------------------------------------
results=() bad=0
for f in "${patches[@]}"; do
  name=$(basename "$f" .patch)
  log="$logs/$name.log"
  start=$SECONDS
  restore
  verdict=""
  if ! git -C "$tree" apply --check "$repo/$f" >"$log" 2>&1; then
    verdict="does not apply"
  else
    git -C "$tree" apply "$repo/$f" >>"$log" 2>&1
    if ! build_tree "$log"; then
      verdict="does not build"
    else
      filter=$(gtest_filter_of "$f") ctests=$(header "$f" CTest)
      missing=$(missing_names "$filter" "$ctests" | paste -sd' ' -)
      n=$(count_tests "$filter" "$ctests")
      if [[ -n "$missing" ]]; then
        verdict="names tests that do not exist: $missing"
      else
        set +e
        run_tests "$filter" "$ctests" "$log" $fail_fast
        rc=$?
        set -e
        # The tests that failed: GoogleTest's result lines, ctest's list of failures.
        by=$( (sed -n 's/^\[  FAILED  \] \([^ ]*\) ([0-9]* ms)$/\1/p' "$log"
               sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\) (.*)$/\1/p' "$log") | sort -u | paste -sd' ' -)
        case $rc in
          0) verdict="SURVIVED (${n} tests passed)" ;;
          124) verdict="killed: timed out after $limit s" ;;
          *) verdict="killed by ${by:-a crash (see the log)}" ;;
        esac
      fi
    fi
  fi
  [[ "$verdict" == killed* ]] || bad=$((bad + 1))
  line="| $name | $verdict | $((SECONDS - start)) s |"
  results+=("$line")
  echo "$line"
done
restore
build_tree "$logs/restore.log" || true  # leave the scratch build matching the tree

{
  echo "| mutation | result | time |"
  echo "|---|---|---|"
  printf '%s\n' "${results[@]}"
} >"$work/summary.md"
echo
cat "$work/summary.md"
echo
if ((bad)); then
  echo "check_mutations: $bad of ${#patches[@]} mutations not killed (logs in $logs)"
  exit 1
fi
echo "check_mutations: all ${#patches[@]} mutations killed"
