#!/bin/sh
# Run every libFuzzer target of a fuzz build for a while.
#   scripts/fuzz.sh BUILD_FUZZ_DIR SECONDS      (make fuzz: build-fuzz/fuzz 60)
# For fuzz_NAME: seeds in fuzz/corpus/NAME (read only), the growing corpus in
# fuzz/work/NAME, crashes in fuzz/artifacts/ (both gitignored). Exits non-zero
# if any target crashes, leaks, times out or fails to run.
set -u

usage() {
	echo "usage: $0 BUILD_FUZZ_DIR SECONDS" >&2
	exit 2
}

[ $# -eq 2 ] || usage
dir=$1
secs=$2
case $secs in
'' | *[!0-9]*) usage ;;
esac
[ -d "$dir" ] || { echo "fuzz.sh: $dir: no such directory" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
artifacts=$root/fuzz/artifacts
mkdir -p "$artifacts" || exit 2

ran=0
failed=""
for bin in "$dir"/fuzz_*; do
	if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then
		continue
	fi
	target=${bin##*/}
	name=${target#fuzz_}
	seeds=$root/fuzz/corpus/$name
	work=$root/fuzz/work/$name
	log=$artifacts/$target.log
	mkdir -p "$work" || exit 2
	if [ -d "$seeds" ]; then
		set -- "$work" "$seeds"
	else
		echo "fuzz.sh: $target: no seed corpus at fuzz/corpus/$name" >&2
		set -- "$work"
	fi
	echo "fuzz.sh: $target for ${secs}s (log: $log)"
	# New inputs go to the first directory only: the seeds stay as committed.
	"$bin" -max_total_time="$secs" -print_final_stats=1 \
	    -artifact_prefix="$artifacts/$target-" "$@" >"$log" 2>&1
	rc=$?
	ran=$((ran + 1))
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
	if [ $rc -ne 0 ]; then
		failed="$failed $target"
		echo "fuzz.sh: $target FAILED (exit $rc, ${runs:-?} runs); last lines of the log:" >&2
		tail -n 30 "$log" >&2
	else
		echo "fuzz.sh: $target ok (${runs:-?} runs)"
	fi
done

if [ $ran -eq 0 ]; then
	echo "fuzz.sh: no fuzz_* binaries in $dir" >&2
	exit 2
fi
if [ -n "$failed" ]; then
	echo "fuzz.sh: crashes in:$failed (inputs in fuzz/artifacts/)" >&2
	exit 1
fi
echo "fuzz.sh: $ran target(s), no crashes"
