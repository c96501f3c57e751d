#!/usr/bin/env bash
# make verify: regenerate everything (CRDs, RBAC, deepcopy, gofmt) in a
# temporary copy of the work tree and fail on any difference from the work
# tree, new files included, without touching the work tree. The copy uses
# the work tree's bin/ for controller-gen, so nothing is downloaded again.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# The work tree as it is, uncommitted and untracked files included; not
# the build outputs or the local control plane's state.
tar -C "$root" --exclude=./bin --exclude=./.dev --exclude=./.git -cf - . | tar -C "$tmp" -xf -
make -C "$tmp" --no-print-directory LOCALBIN="$root/bin" manifests generate fmt >/dev/null
status=0
for d in api config cmd controllers webhooks internal test hack; do
  if ! diff -r -q "$root/$d" "$tmp/$d"; then
    status=1
  fi
done
if [ "$status" -ne 0 ]; then
  echo "generated files differ from the markers: run 'make manifests generate fmt' and commit the result" >&2
fi
exit "$status"
