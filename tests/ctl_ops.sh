#!/usr/bin/env bash
# ctl_ops.sh - xtcmkctl for operators: `COMMAND --help` for every command
# (exit 0), errors as JSON under -j (same exit codes), and the bash
# completion script.
set -u
B=${1:?build dir}
S=${XTCMK_SRCDIR:-$(cd "$(dirname "$0")/.." && pwd)}
X=$B/ctl/xtcmkctl
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }

for c in status stats reload check workload app customer decide key policy resource; do
	out=$($X "$c" --help 2>&1); rc=$?
	if [ $rc = 0 ] && grep -q "^  .*$c" <<<"$out"; then ok "$c --help"
	else bad "$c --help: rc=$rc $out"; fi
done
out=$($X customer show --help); [ $? = 0 ] && grep -q "customer move ID --to APP" <<<"$out" &&
	ok "customer show --help: the customer commands" || bad "customer show --help: $out"
$X nosuch --help >/dev/null 2>&1; [ $? = 2 ] && ok "unknown command --help: exit 2" || bad "nosuch --help"

json_ok() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); sys.exit(0 if set(d) == {"error", "code", "status"} and d["code"] == int(sys.argv[1]) else 1)' "$1"; }
out=$($X -j -s /tmp/xtcmk-no-such.sock status 2>/dev/null); rc=$?
[ $rc = 3 ] && json_ok 2 <<<"$out" && ok "-j, agent unreachable: JSON error (code 2), exit 3" ||
	bad "-j unreachable: rc=$rc '$out'"
out=$($X -j workload add w1 --bogus x 2>/dev/null); rc=$?
[ $rc = 2 ] && json_ok 1 <<<"$out" && grep -q "unknown option --bogus" <<<"$out" &&
	ok "-j, unknown option: JSON error, exit 2" || bad "-j unknown option: rc=$rc '$out'"
out=$($X -j customer add 2>/dev/null); rc=$?
[ $rc = 2 ] && json_ok 1 <<<"$out" && ok "-j, incomplete command: JSON error, exit 2" ||
	bad "-j incomplete: rc=$rc '$out'"
out=$($X -s /tmp/xtcmk-no-such.sock status 2>&1 >/dev/null); rc=$?
[ $rc = 3 ] && [[ $out == "xtcmkctl: "* ]] && ok "without -j: text error on stderr" ||
	bad "text error: rc=$rc '$out'"

# Completion, with the two bash-completion helpers it uses stubbed.
comp() {	# comp WORD...: complete the last word
	bash -c '
	_init_completion() { words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD;
		cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; }
	_filedir() { COMPREPLY=(FILES); }
	complete() { :; }
	. "$0"
	COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
	_xtcmkctl; echo "${COMPREPLY[*]}"' "$S/ctl/xtcmkctl.bash-completion" "$@"
}
[ "$(comp xtcmkctl cust)" = customer ] && ok "completion: command" || bad "completion: '$(comp xtcmkctl cust)'"
[ "$(comp xtcmkctl -j customer mo)" = move ] && ok "completion: subcommand after -j" ||
	bad "completion subcommand: '$(comp xtcmkctl -j customer mo)'"
[ "$(comp xtcmkctl customer add c1 --au)" = --auth ] && ok "completion: option" ||
	bad "completion option: '$(comp xtcmkctl customer add c1 --au)'"
[ "$(comp xtcmkctl customer add c1 --auth r)" = rbac ] && ok "completion: option value" ||
	bad "completion value: '$(comp xtcmkctl customer add c1 --auth r)'"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
