# Convenience recipes. Nothing here is required: README.md gives the plain cargo commands.

default:
    @just --list

# Build the release binary (LTO, stripped) at target/release/logwisp
build:
    cargo build --release

# Run on the built-in default config (./*.log on http://localhost:8080/stream)
run *ARGS:
    cargo run --release -- {{ARGS}}

# The whole test suite (unit + integration through the real binary)
test:
    cargo test

# Model-based tailing test: SEEDS seeds (N for 1..N, or a list like 7,12,30-40) of STEPS
# random file-system actions each; LOGWISP_MODEL_SKIP=refill,swap leaves kinds of action out
model SEEDS="20" STEPS="150":
    LOGWISP_MODEL_SEEDS={{SEEDS}} LOGWISP_MODEL_STEPS={{STEPS}} cargo test --test integration model::seeds_from_env -- --ignored --exact --nocapture

# The same with quiet periods longer than the retire grace (slow: about 10-30 s a seed)
model-slow SEEDS="6" STEPS="60":
    LOGWISP_MODEL_SEEDS={{SEEDS}} LOGWISP_MODEL_STEPS={{STEPS}} cargo test --test integration model::quiet_periods -- --ignored --exact --nocapture

# End-to-end load benchmarks; writes the table into BENCHMARKS.md
bench *ARGS:
    cargo bench --bench load -- {{ARGS}}

# Micro-benchmarks of the hot paths
microbench:
    cargo bench --bench hot_paths

# Fuzz one target for SECS seconds (e.g. `just fuzz http_head 600`)
fuzz TARGET SECS="60":
    ./fuzz/run.sh {{TARGET}} {{SECS}}

# Soak run: steady writes, rotations, client churn for MINUTES minutes
soak MINUTES="30":
    cargo bench --bench soak -- --minutes {{MINUTES}}

# Install the release binary to /usr/local/bin
install: build
    install -m 0755 target/release/logwisp /usr/local/bin/logwisp

clean:
    cargo clean

# Tag a release: `just release v1.2.3` (or `just release TAG=v1.2.3`); --version reports it
release TAG:
    #!/usr/bin/env bash
    set -euo pipefail
    tag="{{TAG}}"; tag="${tag#TAG=}"
    [[ "$tag" =~ ^v[0-9]+\.[0-9]+\.[0-9]+ ]] || { echo "TAG must look like vX.Y.Z"; exit 1; }
    git diff --quiet && git diff --cached --quiet || { echo "commit your changes first"; exit 1; }
    git tag -a "$tag" -m "logwisp $tag"
    cargo build --release
    ./target/release/logwisp --version
    if git remote | grep -q .; then git push origin "$tag"; else echo "no remote: tag $tag created locally"; fi
