#!/usr/bin/env bash
# Checks the include rule of docs/architecture.md: a folder under src/ and include/aim/ may
# include only folders on a lower layer, so no two folders include each other. Prints every
# offending #include and exits 1; run by CTest (Layers.IncludesGoDown).
set -euo pipefail
cd "$(dirname "$0")/.."

# Lowest first; folders on one line share a layer and must not include each other.
declare -A LAYER=(
  [io]=0
  [data]=1 [loss]=1 [dist]=1 [optim]=1 [runtime]=1
  [model]=2
  [config]=3
  [train]=4 [probe]=4
  [scale]=5
)

bad=0
while IFS= read -r file; do
  from=$(sed -E 's#^(src|include/aim)/([a-z_]+)/.*#\2#' <<<"$file")
  if [ -z "${LAYER[$from]+x}" ]; then
    echo "check_layers: folder '$from' ($file) has no layer; add it to scripts/check_layers.sh and docs/architecture.md"
    bad=1
    continue
  fi
  while IFS=: read -r line inc; do
    to=$(sed -E 's#.*"aim/([a-z_]+)/.*#\1#' <<<"$inc")
    [ "$to" = "$from" ] && continue
    if [ -z "${LAYER[$to]+x}" ] || ((LAYER[$to] >= LAYER[$from])); then
      echo "$file:$line: $from (layer ${LAYER[$from]}) includes $to (layer ${LAYER[$to]:-?}): $inc"
      bad=1
    fi
  done < <(grep -nE '^#include "aim/[a-z_]+/' "$file" || true)
done < <(find src include/aim -mindepth 2 -type f \( -name '*.h' -o -name '*.cpp' \) | sort)

if ((bad)); then exit 1; fi
echo "check_layers: every include goes down a layer"
