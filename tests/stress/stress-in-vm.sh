#!/bin/sh
# The vm_stress job, run inside the VM by tests/vm/run-in-vm.sh: a short
# kill -9 chaos run as root (the module's counters are readable only by
# root, so this is where leaks between rounds are checked), then the ioctl
# fuzzer and the full chaos run as nobody, as unprivileged MPI jobs run.
# After each run no process of ours may be left: one that survives SIGKILL
# is stuck in the kernel, and then every task's kernel stack is printed.
#
#   stress-in-vm.sh FUZZ_BINARY CHAOS_BINARY FUZZ_SECONDS CHAOS_ROUNDS [SEED]
set -u
fuzz=$1
chaos=$2
fuzz_seconds=$3
chaos_rounds=$4
seed=${5:-}
seed_arg=${seed:+--seed $seed}
nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"

# Prints the kernel's view of any xpmem_fuzz/xpmem_chaos task still alive.
left_behind() {
	left=""
	for comm in /proc/[0-9]*/comm; do
		case "$(cat "$comm" 2>/dev/null)" in
		xpmem_fuzz | xpmem_chaos) left="$left ${comm%/comm}" ;;
		esac
	done
	[ -n "$left" ] || return 1
	echo "stress: FAIL: processes left after $1:$left"
	for proc in $left; do
		for task in "$proc"/task/*; do
			echo "stress: $task $(cat "$task/comm" 2>/dev/null) state $(cut -d' ' -f3 "$task/stat" 2>/dev/null) wchan $(cat "$task/wchan" 2>/dev/null)"
			cat "$task/stack" 2>/dev/null
		done
	done
	echo w >/proc/sysrq-trigger # blocked tasks, into the kernel log
	echo l >/proc/sysrq-trigger # what every CPU is running
	return 0
}

# run NAME LIMIT_SECONDS COMMAND...: the command, killed if it outlives the
# limit (its own hang detection normally ends it first).
run() {
	name=$1
	limit=$2
	shift 2
	echo "stress: $name"
	timeout -s KILL "$limit" "$@"
	rc=$?
	sleep 1
	if left_behind "$name"; then
		rc=1
	fi
	[ "$rc" = 0 ] || echo "stress: FAIL: $name (status $rc)"
	return "$rc"
}

# $seed_arg and $nobody are meant to split into words.
# shellcheck disable=SC2086
run "chaos sanity as root" 600 "$chaos" --rounds 20 $seed_arg &&
	run "fuzzer as nobody for $fuzz_seconds s" $((fuzz_seconds + 900)) \
		$nobody "$fuzz" --seconds "$fuzz_seconds" $seed_arg &&
	run "chaos as nobody for $chaos_rounds rounds" $((chaos_rounds * 3 + 600)) \
		$nobody "$chaos" --rounds "$chaos_rounds" $seed_arg
