#!/usr/bin/env bash
# tsan.sh - the fast path's concurrency under ThreadSanitizer: builds
# tests/test_shm (agent/shmcache.c, module/shm.c, module/dekcache.c) with
# -fsanitize=thread and runs it: reader threads racing a writer that keeps
# rewriting the memory-mapped records, a file replaced under readers, and
# libxtcmk's DEK cache read lock-free while other threads insert, evict
# and invalidate.  Any report fails the run.
#
#	scripts/tsan.sh [BUILDDIR]	(default: build-tsan)
#
# The agent writes the file through its own mapping and readers map it
# again, so ThreadSanitizer sees the module's own shared state (mapping
# pointer, remap, counters, fast-path user counts, DEK cache) race-free;
# whether a copy taken under a record's sequence number is whole is what
# the test's torn-copy count checks.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$top/build-tsan}
if [ ! -d "$dir" ]; then
	meson setup "$dir" "$top" -Dwerror=true -Db_sanitize=thread \
	    -Db_lundef=false -Dbuildtype=debug >"$dir.setup.log" 2>&1 ||
		{ cat "$dir.setup.log"; exit 1; }
fi
ninja -C "$dir" tests/test_shm >"$dir.build.log" 2>&1 ||
	{ tail -50 "$dir.build.log"; exit 1; }
# The kernel may place the mappings where TSan's shadow memory cannot
# follow (high-entropy ASLR): run without address randomisation then.
run=("$dir/tests/test_shm")
if setarch "$(uname -m)" -R true 2>/dev/null; then
	run=(setarch "$(uname -m)" -R "${run[@]}")
fi
TSAN_OPTIONS="halt_on_error=1 exitcode=66 ${TSAN_OPTIONS:-}" "${run[@]}"
