#!/usr/bin/env bash
# test.sh - the whole test suite: installs what it needs, builds with
# -Wall -Wextra -Werror, runs every test, then builds and runs everything
# again under AddressSanitizer + UndefinedBehaviorSanitizer.
# Ends with a line "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
. scripts/deps.sh
xtcmk_deps || exit 1

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
ASAN_OPTIONS=detect_leaks=1 run_suite build-asan -Db_sanitize=address,undefined \
	-Db_lundef=false -Dbuildtype=debug
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
