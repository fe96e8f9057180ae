#!/usr/bin/env bash
# test.sh - the whole test suite: installs what it needs, builds with
# -Wall -Wextra -Werror, runs every test, then builds and runs everything
# again under AddressSanitizer + UndefinedBehaviorSanitizer, runs the fast
# path's concurrency test under ThreadSanitizer (scripts/tsan.sh), then
# the libFuzzer targets (clang) for a bounded time.
# Ends with a line "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/deps.sh
xtcmk_deps || exit 1
[ "${XTCMK_AZ_CLI:-0}" = 1 ] && { xtcmk_deps_az || exit 1; }

passed=0 failed=0
run_suite() {
	local dir=$1; shift
	echo "=== $dir: meson setup $*"
	if [ ! -d "$dir" ]; then
		meson setup "$dir" -Dwerror=true "$@" >"$dir.setup.log" 2>&1 ||
			{ cat "$dir.setup.log"; failed=$((failed + 1)); return; }
	fi
	if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
		tail -50 "$dir.build.log"
		failed=$((failed + 1))
		return
	fi
	meson test -C "$dir" --print-errorlogs --num-processes 2 \
		--timeout-multiplier "${XTCMK_TIMEOUT_MULT:-1}" 2>&1 |
		tee "$dir.test.log" | grep -Ev '^ *[0-9]+/[0-9]+ .* OK ' || true
	local ok fail
	ok=$(sed -n 's/^Ok: *\([0-9]*\).*/\1/p' "$dir.test.log" | tail -1)
	fail=$(sed -n 's/^Fail: *\([0-9]*\).*/\1/p' "$dir.test.log" | tail -1)
	to=$(sed -n 's/^Timeout: *\([0-9]*\).*/\1/p' "$dir.test.log" | tail -1)
	passed=$((passed + ${ok:-0}))
	failed=$((failed + ${fail:-0} + ${to:-0}))
	[ -n "$ok" ] || failed=$((failed + 1))
}

run_suite build-test
# The fleet test's concurrent onboarding at 1000 customers there (3000
# in the plain pass), the scale test at 5000 (20000 in the plain pass)
# and the worker kills during an import at 1500 (4000): the sanitizers
# make every agent several times slower, and the sizes change no code
# path.
FLEET_CUSTOMERS=1000 XTCMK_SCALE_CUSTOMERS=5000 \
    XTCMK_WORKERKILL_CUSTOMERS=1500 ASAN_OPTIONS=detect_leaks=1 \
	run_suite build-asan -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug
# The fast path's concurrency under ThreadSanitizer (test_shm; ~15 s).
echo "=== build-tsan: scripts/tsan.sh"
if scripts/tsan.sh build-tsan >build-tsan.test.log 2>&1; then
	passed=$((passed + 1))
else
	tail -50 build-tsan.test.log
	failed=$((failed + 1))
fi
# Fuzz stage: every libFuzzer target for XTCMK_FUZZ_SECONDS (default 12)
# on a copy of its seed corpus (tests/fuzz/run.sh).
run_fuzz() {
	local dir=build-fuzz out
	echo "=== $dir: fuzz targets, ${XTCMK_FUZZ_SECONDS:-12} s each"
	if [ ! -d "$dir" ]; then
		CC=clang meson setup "$dir" -Dfuzz=true -Dwerror=true \
		    >"$dir.setup.log" 2>&1 ||
			{ cat "$dir.setup.log"; failed=$((failed + 1)); return; }
	fi
	if ! ninja -C "$dir" fuzz >"$dir.build.log" 2>&1; then
		tail -50 "$dir.build.log"
		failed=$((failed + 1))
		return
	fi
	tests/fuzz/run.sh "$dir" "${XTCMK_FUZZ_SECONDS:-12}" 2>&1 |
		tee "$dir.test.log"
	out=$(tail -1 "$dir.test.log")
	if [[ $out =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
		passed=$((passed + BASH_REMATCH[1]))
		failed=$((failed + BASH_REMATCH[2]))
	else
		failed=$((failed + 1))
	fi
}
run_fuzz

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
