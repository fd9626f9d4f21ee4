#!/usr/bin/env bash
# Runs every test tier of sand (README's test command):
#   static   gofmt and go vet (all build tags)
#   unit     go test ./...              pure logic and fakes, no root
#   netns    go test -tags netns        real sand, tgtd, initiators in namespaces
#   vm       go test -tags vm           the appliance image booted twice under QEMU
#   bench    go test -tags netns -bench figures: LUN create latency and scale
#   vm-bench go test -tags vm -bench     figures: failover time of the DRBD pair
# Needs root. Under CI=true a tier that lacks a prerequisite fails.
set -uo pipefail
cd "$(dirname "$0")/.."
tests/setup.sh || exit 1
export PATH=/usr/local/go/bin:$PATH

passed=0 failed=0 failures=()
tier() {
  local name=$1; shift
  echo "=== tier $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1)); echo "=== tier $name passed in $((SECONDS - start))s"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== tier $name FAILED in $((SECONDS - start))s"
  fi
}

gofmt_clean() {
  local out
  out=$(gofmt -l $(git ls-files '*.go'))
  [ -z "$out" ] || { echo "gofmt would change:"; echo "$out"; return 1; }
}
vet_all() { go vet ./... && go vet -tags netns ./... && go vet -tags vm ./...; }

tier gofmt gofmt_clean
tier vet vet_all
tier unit go test -count=1 ./...
tier netns go test -count=1 -tags netns -timeout 20m -v ./tests/netns/ ./iscsi/tgt/
tier security go test -count=1 -tags netns -timeout 20m -v ./tests/security/
tier vm go test -count=1 -tags vm -timeout 45m -v ./tests/vm/
tier bench go test -count=1 -tags netns -timeout 20m -run '^$' -bench . -benchtime 1x -v ./tests/bench/
tier vm-bench go test -count=1 -tags vm -timeout 45m -run '^$' -bench . -benchtime 1x -v ./tests/vm/

echo
[ $failed -eq 0 ] || echo "failed tiers: ${failures[*]}"
echo "tiers: $passed passed, $failed failed"
[ $failed -eq 0 ]
