#!/usr/bin/env bash
# Builds and runs the engine's C++ tests (test/engine/*_test.cc), each linked with every
# engine source, with AddressSanitizer and UBSan. Usage: test/engine/run.sh [name-filter]
# A test that also needs other sources (link drivers) names them, relative to the repository,
# on a line of its own: `// run.sh links: native/link/vnl.cc native/link/vde.cc`.
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
# an extra source's object, compiled when missing or older than it or a header it may use
extra_obj() {
  local s="$root/$1"
  local o="$out/$(echo "$1" | tr '/' '_').o"
  if [ ! -f "$s" ]; then echo "run.sh: $1 (named by a run.sh links: line) does not exist" >&2; return 1; fi
  if [ ! -f "$o" ] || [ "$s" -nt "$o" ] || [ -n "$(find "$root/native/engine" "$(dirname "$s")" -name '*.h' -newer "$o" -print -quit)" ]; then
    g++ "${flags[@]}" -c "$s" -o "$o" >&2
  fi
  echo "$o"
}
status=0
for t in "$here"/*_test.cc; do
  [ -e "$t" ] || continue
  name=$(basename "$t" .cc)
  if [ $# -gt 0 ] && [[ "$name" != *"$1"* ]]; then continue; fi
  extra=()
  for src in $(sed -n 's|^// run.sh links:||p' "$t"); do
    extra+=("$(extra_obj "$src")")
  done
  g++ "${flags[@]}" "$t" "${objs[@]}" "${extra[@]}" -o "$out/$name"
  echo "== $name"
  if ! "$out/$name"; then status=1; fi
done
exit $status
