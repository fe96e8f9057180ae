#!/bin/bash
# tests/man.sh BUILDDIR - the man pages and systemd units.
#
# Lints every page (source and built) with mandoc -Tlint -W warning;
# checks that every xtcmkctl and xtcmk-luks command of usage(), every
# config key of conf.c's ckeys[] and every public function of xtcmk.h is
# documented;
# verifies the units with systemd-analyze when it is installed.
set -u

src=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
build=$(cd "${1:?usage: man.sh BUILDDIR}" && pwd) || exit 1
fail=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/xtcmk-man.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bad() {
	echo "FAIL: $*"
	fail=1
}

pages=("$src"/man/*.[1-9])
[ ${#pages[@]} -ge 6 ] || bad "expected 6 pages in man/, found ${#pages[@]}"

# 1. mandoc lint, sources and built pages.
if ! command -v mandoc >/dev/null; then
	bad "mandoc is not installed (apt-get install mandoc)"
else
	for p in "${pages[@]}" "$build"/man/*.[1-9]; do
		[ -f "$p" ] || continue
		out=$(mandoc -Tlint -W warning "$p" 2>&1)
		[ -z "$out" ] || bad "mandoc -Tlint $p:"$'\n'"$out"
	done
fi

# Built pages must have every path filled in.
for p in "$build"/man/*.[1-9]; do
	[ -f "$p" ] || bad "$p was not built"
	[ -f "$p" ] && grep -q '@[A-Z]*@' "$p" && bad "$p has an unfilled @TOKEN@"
done

# Rendered text of a page, for grepping.
render() {
	mandoc -Tascii "$src/man/$1" 2>/dev/null | col -b
}

# 2. Every xtcmkctl command in usage() appears in xtcmkctl(8).
ctl=$(render xtcmkctl.8)
usage=$(sed -n '/^usage(FILE \*out)/,/^}/p' "$src/ctl/xtcmkctl.c")
[ -n "$usage" ] || bad "cannot find usage() in ctl/xtcmkctl.c"
# "  workload list | show NAME | remove NAME" -> "workload list", ...
cmds=$(printf '%s\n' "$usage" | grep '^"  [a-z]' |
    sed 's/^"  //; s/\\n"$//; s/fic add|remove/fic add/' | awk '
	{
		n = split($0, alt, /\|/)
		first = alt[1]; sub(/^ +/, "", first)
		nw = split(first, w, " ")
		group = w[1]
		for (i = 1; i <= n; i++) {
			a = alt[i]; sub(/^ +/, "", a)
			split(a, ws, " ")
			if (ws[1] !~ /^[a-z]+$/) continue
			if (i == 1 || ws[1] == group) cmd = ws[1] " " ws[2]
			else if (nw == 1) cmd = ws[1]
			else cmd = group " " ws[1]
			sub(/ [A-Z\[].*$/, "", cmd); sub(/ $/, "", cmd)
			sub(/ [A-Z]+$/, "", cmd)
			print cmd
		}
	}')
# Continuation lines: "      enable URI | delete URI | ..." belong to key.
cmds+=$'\n'"app fic remove"
cmds+=$'\n'$(printf '%s\n' "$usage" | grep '^"      [a-z]' |
    sed 's/^" *//; s/\\n"$//' | tr '|' '\n' | awk '$1 ~ /^[a-z]+$/ { print "key " $1 }')
ncmds=0
while read -r c; do
	[ -n "$c" ] || continue
	ncmds=$((ncmds + 1))
	# "app fic add" is written "app fic add|remove" in usage().
	c=${c%%|*}
	grep -q -- "^ *$c\b" <<<"$ctl" || bad "xtcmkctl(8) lacks command '$c'"
done <<<"$cmds"
[ $ncmds -ge 20 ] || bad "found only $ncmds commands in usage(); parser broken?"

# The SYNOPSIS matches usage()'s first line.
syn=$(printf '%s\n' "$ctl" | sed -n '/^SYNOPSIS/{n;p;}' | sed 's/^ *//')
use=$(printf '%s\n' "$usage" | grep -o 'usage: [^\\]*' | sed 's/^usage: //')
[ "$syn" = "$use" ] || bad "xtcmkctl SYNOPSIS '$syn' differs from usage() '$use'"
dsyn=$(render xtcmkd.8 | sed -n '/^SYNOPSIS/{n;p;}' | sed 's/^ *//')
duse=$(grep -o 'usage: xtcmkd [^\\]*' "$src/agent/main.c" | sed 's/^usage: //')
[ "$dsyn" = "$duse" ] || bad "xtcmkd SYNOPSIS '$dsyn' differs from usage() '$duse'"

# 3. Every config key of ckeys[] appears in xtcmk.conf(5) as "key = ".
conf=$(render xtcmk.conf.5)
keys=$(sed -n '/^static const struct ckey ckeys\[\]/,/^};/p' "$src/agent/conf.c" |
    grep -o '{ "[a-z]*", "[a-z_]*"' | sed 's/.*, "//; s/"$//')
nkeys=0
for k in $keys; do
	nkeys=$((nkeys + 1))
	grep -q "^ *$k = " <<<"$conf" || bad "xtcmk.conf(5) lacks key '$k'"
	grep -q "^#*$k =" "$src/examples/xtcmk.conf" ||
	    bad "examples/xtcmk.conf lacks key '$k'"
done
[ $nkeys -ge 20 ] || bad "found only $nkeys keys in ckeys[]; parser broken?"
for s in agent access policy keys azure params; do
	grep -q "^ *\[$s\]" <<<"$conf" || bad "xtcmk.conf(5) lacks section [$s]"
done
for p in customers_per_app dedicated_tier app_prefix default_region; do
	grep -q "^$p = " "$src/examples/xtcmk.conf" ||
	    bad "examples/xtcmk.conf lacks [params] $p"
done

# 4. Every public function of xtcmk.h is in libxtcmk(3)'s NAME and
# SYNOPSIS, and every result code and field in the page.
lib=$(cat "$src/man/libxtcmk.3")
funcs=$(grep -o '\bxtcmk_[a-z0-9_]*(' "$src/module/xtcmk.h" | tr -d '(' | sort -u)
nfuncs=0
for f in $funcs; do
	nfuncs=$((nfuncs + 1))
	grep -q "^\.Nm $f\b" <<<"$lib" || bad "libxtcmk(3) NAME lacks $f"
	grep -q "^\.Fn $f " <<<"$lib" || bad "libxtcmk(3) SYNOPSIS lacks $f"
done
[ $nfuncs -ge 15 ] || bad "found only $nfuncs functions in xtcmk.h"
for c in $(grep -o '\bXTCMK_\(E\|F\)_[A-Z0-9_]*' "$src/module/xtcmk.h" | sort -u); do
	grep -q "Dv $c\b" <<<"$lib" || bad "libxtcmk(3) lacks $c"
done
# Every map export is documented too.
for f in $(grep -o '^\s*xtcmk_[a-z0-9_]*;' "$src/module/libxtcmk.map" | tr -d ' \t;'); do
	grep -q "^\.Fn $f " <<<"$lib" || bad "libxtcmk(3) lacks exported $f"
done

# 5. Every message type and tag of wire.h is in xtcmk-protocol(7).
proto=$(cat "$src/man/xtcmk-protocol.7")
for t in $(grep -o '\bXT_[A-Z0-9_]*' "$src/common/wire.h" | sort -u); do
	grep -q "Dv $t\b" <<<"$proto" || bad "xtcmk-protocol(7) lacks tag $t"
done
for m in $(grep -o '\bXW_\(HELLO\|DECIDE\|ADMIN\|PING\|DEK_[A-Z]*\|KEY_[A-Z]*\)\b' \
    "$src/common/wire.h" | sort -u); do
	grep -q "Dv ${m#XW_}\b" <<<"$proto" || bad "xtcmk-protocol(7) lacks $m"
done

# 6. xtcmk-luks(8): its SYNOPSIS is usage() (case aside: usage() says
# DEVICE where the page says device) and every command is described.
if [ -f "$src/luks/xtcmk-luks.c" ]; then
	flat() { tr '\t\n' '  ' | tr -s ' ' | sed 's/^ //; s/ $//' | tr 'A-Z' 'a-z'; }
	luse=$(sed -n '/^usage(FILE \*out)/,/^}/p' "$src/luks/xtcmk-luks.c" |
	    grep -o '"[^"]*"' | tr -d '"\n' | sed 's/\\n/ /g; s/usage: //' | flat)
	lpage=$(render xtcmk-luks.8)
	lsyn=$(printf '%s\n' "$lpage" | sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' |
	    sed '1d;$d' | flat)
	[ -n "$luse" ] && [ "$luse" = "$lsyn" ] ||
	    bad "xtcmk-luks SYNOPSIS '$lsyn' differs from usage() '$luse'"
	for c in $(grep -o 'xtcmk-luks [a-z]*' <<<"$luse" | sed 's/.* //' | sort -u); do
		grep -q "^ *$c device" <<<"$lpage" || bad "xtcmk-luks(8) lacks command '$c'"
	done
fi

# 7. systemd units.
for u in xtcmkd.service xtcmkd.socket; do
	[ -f "$build/systemd/$u" ] || bad "$build/systemd/$u was not built"
done
svc="$build/systemd/xtcmkd.service"
if [ -f "$svc" ]; then
	grep -q '@[A-Z]*@' "$svc" && bad "$svc has an unfilled @TOKEN@"
	for want in 'Type=notify' 'NotifyAccess=main' 'Restart=on-failure' 'User=xtcmk' 'ExecReload=/bin/kill -HUP $MAINPID' \
	    'StateDirectory=xtcmk' 'RuntimeDirectory=xtcmk' 'CapabilityBoundingSet=' \
	    'LimitMEMLOCK=64M' 'UMask=0077' 'SystemCallFilter=@system-service'; do
		grep -qxF "$want" "$svc" || bad "xtcmkd.service lacks $want"
	done
fi
if command -v systemd-analyze >/dev/null && [ -f "$svc" ]; then
	# verify wants ExecStart to exist: use the built agent, or a stand-in.
	exe="$build/agent/xtcmkd"
	[ -x "$exe" ] || exe=/bin/true
	sed "s|^ExecStart=[^ ]*|ExecStart=$exe|" "$svc" >"$tmp/xtcmkd.service"
	cp "$build/systemd/xtcmkd.socket" "$tmp/"
	out=$(cd "$tmp" && systemd-analyze verify --man=no \
	    ./xtcmkd.socket ./xtcmkd.service 2>&1)
	rc=$?
	# Warnings about the host (no systemd as PID 1 in a container) are
	# not the units' fault; anything naming our units is.
	if [ $rc -ne 0 ] || grep -q 'xtcmkd\.' <<<"$out"; then
		bad "systemd-analyze verify:"$'\n'"$out"
	fi
	# The exposure score of the hardening (0 best, 10 worst).
	score=$(cd "$tmp" && systemd-analyze security --offline=yes --man=no \
	    ./xtcmkd.service 2>/dev/null | sed -n 's/.*exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	if [ -n "$score" ]; then
		echo "systemd-analyze security: exposure $score"
		awk -v s="$score" 'BEGIN { exit !(s <= 2.5) }' ||
			bad "xtcmkd.service exposure $score is above 2.5"
	else
		echo "skip: systemd-analyze security --offline not available"
	fi
else
	echo "skip: systemd-analyze not installed"
fi

if [ $fail -ne 0 ]; then
	echo "man.sh: FAILED"
	exit 1
fi
echo "man.sh: ok ($ncmds commands, $nkeys config keys, $nfuncs functions)"
