#!/usr/bin/env bash
# run.sh BUILDDIR SECONDS [NAME...] - run every libFuzzer target (or the
# named ones, e.g. wire) of BUILDDIR (set up
# with CC=clang meson setup BUILDDIR -Dfuzz=true) for SECONDS each, on a
# copy of its seed corpus in tests/fuzz/corpus/NAME (the tree is never
# modified).  A crash, leak, sanitizer report or broken property fails the
# target; its input is printed as hex and kept in BUILDDIR/fuzz-crashes/.  Prints the executions each
# target reached and ends with "N passed, N failed".
#
# Environment: XTCMK_FUZZ_JOBS targets at once (default: CPUs, at most 4);
# XTCMK_FUZZ_KEEP=1 keeps the work directory.
set -uo pipefail

if [ $# -lt 2 ] || ! [[ $2 =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
	echo "usage: run.sh BUILDDIR SECONDS [NAME...]" >&2
	exit 2
fi
build=$(cd "$1" && pwd) || exit 2
secs=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
jobs=${XTCMK_FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
[ "$jobs" -gt 4 ] && jobs=4
[ "$jobs" -lt 1 ] && jobs=1

work=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-fuzz.XXXXXX") || exit 1
[ "${XTCMK_FUZZ_KEEP:-0}" = 1 ] || trap 'rm -rf "$work"' EXIT

export XTCMK_SRCDIR=$top
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for d in "$here"/corpus/*/; do
		targets+=("$(basename "$d")")
	done
fi
for t in "${targets[@]}"; do
	if [ ! -d "$here/corpus/$t" ]; then
		echo "run.sh: no target $t (no corpus/$t)" >&2
		exit 2
	fi
done

# One target: fuzz a private copy of its corpus, then judge the log.
run_one() {
	local t=$1 exe="$build/tests/fuzz/fuzz_$1" dir="$work/$1"
	mkdir -p "$dir/corpus" "$dir/crash"
	cp -R "$here/corpus/$t/." "$dir/corpus/"
	if [ ! -x "$exe" ]; then
		echo "missing $exe: build it with ninja -C $build fuzz" >"$dir/log"
		echo 1 >"$dir/rc"
		return
	fi
	# -timeout: an input taking longer is a hang, and a failure.
	(cd "$dir" && "$exe" -max_total_time="$secs" -rss_limit_mb=2048 \
	    -timeout=25 -print_final_stats=1 -artifact_prefix="$dir/crash/" \
	    "$dir/corpus" >"$dir/log" 2>&1)
	echo $? >"$dir/rc"
}

running=0
for t in "${targets[@]}"; do
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait

passed=0 failed=0
for t in "${targets[@]}"; do
	dir="$work/$t"
	rc=$(cat "$dir/rc" 2>/dev/null || echo 1)
	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' \
	    "$dir/log" | tail -1)
	bad=$(grep -E -m1 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|property broken|==[0-9]+==ERROR' \
	    "$dir/log")
	if [ "$rc" = 0 ] && [ -z "$bad" ] && [ -n "$execs" ]; then
		printf 'fuzz_%-14s ok      %10s executions in %s s\n' "$t" \
		    "$execs" "$secs"
		passed=$((passed + 1))
		continue
	fi
	printf 'fuzz_%-14s FAILED  (exit %s, %s executions)\n' "$t" "$rc" \
	    "${execs:-?}"
	grep -E -A30 'ERROR:|runtime error:|property broken' "$dir/log" |
	    head -60 | sed 's/^/    /'
	[ -z "$bad" ] && tail -20 "$dir/log" | sed 's/^/    /'
	for a in "$dir"/crash/*; do
		[ -f "$a" ] || continue
		echo "    input $(basename "$a") ($(wc -c <"$a") bytes), hex:"
		od -An -tx1 -v "$a" | tr -d ' \n' | fold -w 96 | head -40 |
		    sed 's/^/      /'
		echo
		mkdir -p "$build/fuzz-crashes" &&
		    cp "$a" "$build/fuzz-crashes/fuzz_$t-$(basename "$a")" &&
		    echo "    kept as $build/fuzz-crashes/fuzz_$t-$(basename "$a")"
	done
	failed=$((failed + 1))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
