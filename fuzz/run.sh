#!/usr/bin/env bash
# Fuzz one target for SECS seconds: ./fuzz/run.sh TARGET [SECS]  (also `just fuzz TARGET SECS`)
#
# Works on stable Rust: cargo-fuzz needs nightly-only flags (-Zsanitizer), which
# RUSTC_BOOTSTRAP=1 unlocks on a stable toolchain. libFuzzer itself needs a C++ compiler.
# The corpus grows in fuzz/corpus/TARGET (git-ignored), seeded from fuzz/seeds/TARGET
# (committed); crashes land in fuzz/artifacts/TARGET. Extra arguments go to libFuzzer,
# e.g. `./fuzz/run.sh entry 600 -max_len=1024`. Without -jobs libFuzzer runs one in-process
# worker (one core); `-jobs=1` is the same but logs to fuzz-0.log.
set -euo pipefail

usage() { echo "usage: $0 TARGET [SECS] [libfuzzer args...]  (targets: $(ls "$(dirname "$0")/fuzz_targets" | sed 's/\.rs$//' | tr '\n' ' '))" >&2; exit 2; }
[[ $# -ge 1 ]] || usage
target=$1
secs=${2:-60}
shift $(( $# >= 2 ? 2 : 1 ))
[[ "$secs" =~ ^[0-9]+$ ]] || usage

cd "$(dirname "$0")"
[[ -f "fuzz_targets/$target.rs" ]] || usage

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz not found: installing it (cargo install cargo-fuzz)" >&2
    cargo install --locked cargo-fuzz
fi

mkdir -p "corpus/$target" "artifacts/$target"
extra=()
[[ -f "dicts/$target.dict" ]] && extra+=("-dict=dicts/$target.dict")
# Heads up to the 16 KiB buffer limit and beyond must be reachable, or the size checks
# are never exercised (libFuzzer's default is 4 KiB).
[[ "$target" == http_head ]] && extra+=("-max_len=20000")

# Debug assertions on (-a): overflow and slice checks catch bugs release code would hide.
# Sanitizer: none: the code under test is safe Rust, and ASan doubles the cost per run.
exec env RUSTC_BOOTSTRAP=1 cargo fuzz run -a --sanitizer none "$target" \
    "corpus/$target" "seeds/$target" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    "${extra[@]}" "$@"
