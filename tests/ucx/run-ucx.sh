#!/usr/bin/env bash
# The UCX suite, run inside the VM.  With the module loaded (--expect-xpmem):
# ucx_info lists the transport; our UCP program passes with UCX_TLS=xpmem and
# xpmem,cma, and with UCP's rendezvous through rkey_ptr; ucx_perftest's UCP and
# UCT tests run 8 B .. 16 MiB between two processes; and each step grew the
# module's fault counter (data really went through attachments).  Without it
# (--expect-no-xpmem): the transport is absent and the program passes on UCX's
# other transports.
#   run-ucx.sh --expect-xpmem|--expect-no-xpmem MODULE_SO UCP_PROGRAM
set -euo pipefail
mode=$1 module=$2 program=$3
export LD_PRELOAD=$module${LD_PRELOAD:+:$LD_PRELOAD}
stats=/sys/kernel/debug/xpmem/stats
faults() { if [ -r "$stats" ]; then awk '$1 == "faults" {print $2}' "$stats"; else echo 0; fi; }
fail() { echo "FAIL: $*"; exit 1; }

# Runs a step and requires that it moved data through XPMEM attachments.
through_xpmem() {
	local what=$1 before after
	shift
	before=$(faults)
	"$@" || fail "$what exited non-zero"
	after=$(faults)
	[ "$after" -gt "$before" ] || fail "$what: no XPMEM faults, the transport carried nothing"
	echo "ok: $what ($((after - before)) attachment faults)"
}

# ucx_perftest between a server and a client process on this host.
port=13400
perftest() {
	port=$((port + 1))
	ucx_perftest -p $port "$@" >/tmp/perftest-server.log 2>&1 &
	local server=$!
	local tries=0 rc=0
	sleep 0.5
	until ucx_perftest 127.0.0.1 -p $port -f "$@" >/tmp/perftest-client.log 2>&1; do
		tries=$((tries + 1))
		[ $tries -lt 20 ] || { rc=1; break; }
		sleep 0.5 # the server may not listen yet
	done
	wait $server || rc=1
	[ $rc -eq 0 ] || { cat /tmp/perftest-server.log /tmp/perftest-client.log; return 1; }
	# With -f the client prints one line of figures: iterations, latency
	# (50th percentile, average, overall), bandwidth, message rate.
	awk -v what="$*" 'NF >= 8 && $1 ~ /^[0-9]+$/ {line = $0} END {print "    " what ":" line}' \
		/tmp/perftest-client.log
}

case "$mode" in
--expect-xpmem)
	# (Captured first: grep -q closing the pipe early would fail it under pipefail.)
	devices=$(ucx_info -d) config=$(ucx_info -c -f)
	grep -q "Transport: xpmem" <<<"$devices" || fail "ucx_info -d does not list the xpmem transport"
	grep -q "^UCX_XPMEM_FIFO_SIZE=" <<<"$config" || fail "ucx_info -c does not list UCX_XPMEM_*"
	echo "ok: ucx_info lists transport xpmem and its configuration"

	# UCP's rendezvous copies through our get_zcopy by default, and through
	# rkey_ptr (UCP's own memcpy) when the md advertises it.
	# (ucx_info -d prints each memory domain's block from its heading on.)
	xpmem_md() { awk '/^# Memory domain:/ {md = $4} md == "xpmem"'; }
	md=$(xpmem_md <<<"$devices")
	rkey_ptr_md=$(UCX_XPMEM_RNDV_RKEY_PTR=y ucx_info -d | xpmem_md)
	grep -q "rkey_ptr is supported" <<<"$md" && fail "the xpmem md advertises rkey_ptr by default"
	grep -q "rkey_ptr is supported" <<<"$rkey_ptr_md" ||
		fail "UCX_XPMEM_RNDV_RKEY_PTR=y does not advertise rkey_ptr"
	for tls in xpmem xpmem,cma; do
		through_xpmem "ucp_correctness UCX_TLS=$tls" env UCX_TLS=$tls "$program" --expect-rkey-ptr
	done
	through_xpmem "ucp_correctness UCX_TLS=xpmem UCX_XPMEM_RNDV_RKEY_PTR=y" \
		env UCX_TLS=xpmem UCX_XPMEM_RNDV_RKEY_PTR=y "$program" --expect-rkey-ptr

	for tls in xpmem xpmem,cma; do
		export UCX_TLS=$tls
		for size in 8 4096 65536 1048576 16777216; do
			n=200
			[ "$size" -ge 1048576 ] && n=20
			for test in tag_lat tag_bw ucp_put_bw ucp_get ucp_am_bw; do
				# RMA always goes through attachments, tag messages from the
				# rendezvous size up; small ones through the FIFO (with these
				# UCX_TLS values nothing else can carry active messages).
				case "$test/$size" in
				ucp_put_bw/* | ucp_get/* | tag_*/1048576 | tag_*/16777216)
					through_xpmem "perftest $test $size UCX_TLS=$tls" perftest -t $test -s $size -n $n -w 2 ;;
				*) perftest -t $test -s $size -n $n -w 2 || fail "perftest $test $size UCX_TLS=$tls" ;;
				esac
			done
		done
	done
	unset UCX_TLS
	# UCT level: the transport's own AM, put and get, bcopy and zcopy.
	for args in "-t am_bw -D bcopy -s 8000" "-t am_bw -D short -s 64" "-t am_bw -D shortiov -s 16,48" "-t put_bw -D zcopy -s 1048576" \
		"-t get -D zcopy -s 1048576" "-t put_bw -D bcopy -s 65536" "-t get -D bcopy -s 65536" \
		"-t add_lat -s 8" "-t fadd -s 8" "-t cswap -s 8"; do
		# shellcheck disable=SC2086
		perftest -x xpmem -d memory $args -n 200 -w 2 || fail "UCT perftest $args"
	done
	echo "ok: UCT-level perftests"
	;;
--expect-no-xpmem)
	[ ! -e /dev/xpmem ] || fail "/dev/xpmem exists"
	devices=$(UCX_LOG_LEVEL=info ucx_info -d 2>&1)
	if grep -q "Transport: xpmem" <<<"$devices"; then fail "xpmem listed without the module"; fi
	grep -q "xpmem: transport unavailable" <<<"$devices" ||
		fail "no readable line about the missing module at UCX_LOG_LEVEL=info"
	"$program" || fail "ucp_correctness on UCX's other transports"
	echo "ok: transport absent, UCP runs on the other transports"
	;;
*) fail "unknown mode $mode" ;;
esac
echo "PASS: run-ucx.sh $mode"
