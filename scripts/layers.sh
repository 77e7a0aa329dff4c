#!/usr/bin/env bash
# The structure check: lib/ is six layers, and every `crate::` path in a layer may
# only name its own layer or one below it:
#   base < formats < transport < config < ops < report
# An operation (ops/<name>) never names another operation. A path through the
# crate root's re-exports (`crate::Error`, `crate::{...}`) is refused too: it would
# hide the layer it comes from. Comment lines are not read.
#
#   scripts/layers.sh [LIB_DIR]     check (default: lib/ beside this script)
#   scripts/layers.sh --self-test   show that the check fails on an upward import
#
# Prints each offending line as FILE:LINE: text, and exits 1 if there is one.
set -euo pipefail

rank() {
  case "$1" in
    base) echo 0 ;; formats) echo 1 ;; transport) echo 2 ;; config) echo 3 ;;
    ops) echo 4 ;; report) echo 5 ;; *) echo -1 ;;
  esac
}

check() {
  local lib=$1 bad=0 file rel layer op mine line num text ref target their
  while IFS= read -r file; do
    rel=${file#"$lib"/}
    layer=${rel%%/*}
    layer=${layer%.rs}
    [ "$layer" = lib ] && continue # the map and the curated re-exports
    mine=$(rank "$layer")
    if [ "$mine" -lt 0 ]; then
      echo "$file: not in a layer folder (base, formats, transport, config, ops, report)"
      bad=1
      continue
    fi
    op=""
    if [ "$layer" = ops ]; then
      op=${rel#ops/}
      op=${op%%/*}
      op=${op%.rs}
    fi
    while IFS= read -r line; do
      num=${line%%:*}
      text=${line#*:}
      case "$(printf '%s' "$text" | sed 's/^[[:space:]]*//')" in //*) continue ;; esac
      for ref in $(printf '%s' "$text" | grep -oE 'crate::(\{|[A-Za-z_][A-Za-z0-9_]*)(::[A-Za-z_][A-Za-z0-9_]*)?'); do
        target=${ref#crate::}
        target=${target%%::*}
        their=$(rank "$target")
        if [ "$their" -lt 0 ]; then
          echo "$file:$num: names $ref through the crate root; name its layer:$text"
          bad=1
        elif [ "$their" -gt "$mine" ]; then
          echo "$file:$num: $layer imports $target, a layer above it:$text"
          bad=1
        elif [ -n "$op" ] && [ "$target" = ops ]; then
          local other=${ref#crate::ops::}
          if [ "$other" != "$ref" ] && [ "$other" != "$op" ] && [ "$other" != mod ]; then
            echo "$file:$num: operation $op imports operation $other (move what they share down):$text"
            bad=1
          fi
        fi
      done
    done < <(grep -n 'crate::' "$file" || true)
  done < <(find "$lib" -name '*.rs' | sort)
  return $bad
}

if [ "${1:-}" = --self-test ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/base" "$tmp/ops"
  printf 'use crate::base::error::Error;\n' >"$tmp/ops/store.rs"
  check "$tmp" >/dev/null || { echo "layers self-test: a downward import was refused"; exit 1; }
  printf '// crate::ops::store in a comment is not an import\n' >"$tmp/base/error.rs"
  check "$tmp" >/dev/null || { echo "layers self-test: a comment was read"; exit 1; }
  printf 'use crate::ops::store::Report;\n' >>"$tmp/base/error.rs"
  if check "$tmp" >/dev/null; then echo "layers self-test: an upward import passed"; exit 1; fi
  printf 'use crate::base::error::Error;\n' >"$tmp/base/error.rs"
  printf 'use crate::ops::store::Report;\n' >"$tmp/ops/delete.rs"
  if check "$tmp" >/dev/null; then echo "layers self-test: an operation importing another passed"; exit 1; fi
  rm "$tmp/ops/delete.rs"
  printf 'use crate::Error;\n' >"$tmp/ops/delete.rs"
  if check "$tmp" >/dev/null; then echo "layers self-test: a root re-export passed"; exit 1; fi
  echo "layers self-test: ok"
  exit 0
fi

lib=${1:-"$(cd "$(dirname "$0")/.." && pwd)/lib"}
if check "$lib"; then
  echo "layers: ok (base < formats < transport < config < ops < report; no operation imports another)"
else
  exit 1
fi
