#!/usr/bin/env bash
# Builds and runs the engine's C++ tests (test/engine/*_test.cc), each linked with every
# engine source, with AddressSanitizer and UBSan. Usage: test/engine/run.sh [name-filter]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out="$here/bin"
mkdir -p "$out"
mapfile -t srcs < <(find "$root/native/engine" -name '*.cc' | sort)
flags=(-std=c++17 -O1 -g -Wall -Wextra -Wno-unused-parameter -fsanitize=address,undefined -fno-omit-frame-pointer -I "$root/native")
# engine objects once
objs=()
for s in "${srcs[@]}"; do
  o="$out/$(echo "${s#$root/}" | tr '/' '_').o"
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ -n "$(find "$root/native/engine" -name '*.h' -newer "$o" -print -quit)" ]; then
    g++ "${flags[@]}" -c "$s" -o "$o"
  fi
  objs+=("$o")
done
status=0
for t in "$here"/*_test.cc; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .cc)
  if [ $# -gt 0 ] && [[ "$name" != *"$1"* ]]; then continue; fi
  g++ "${flags[@]}" "$t" "${objs[@]}" -o "$out/$name"
  echo "== $name"
  if ! "$out/$name"; then status=1; fi
done
exit $status
