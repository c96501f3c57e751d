#!/usr/bin/env bash
# Builds the real control-plane binaries (kube-apiserver, kubectl, etcd) from the
# Go module proxy, once per version, into a cache outside the work tree, and
# prints the directory that holds them (usable as KUBEBUILDER_ASSETS).
#
#   hack/control-plane.sh            build if missing, print the directory
#
# Versions come from the tools modules under hack/tools; the cache key is the
# pair of versions so that a version bump builds a new set beside the old one.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/hack/tools/kube/go.mod")}
ETCD_VERSION=${ETCD_VERSION:-$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$root/hack/tools/etcd/go.mod")}
cache=${PORTCULLIS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis}
dir="$cache/control-plane/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}"

log() { echo "control-plane: $*" >&2; }

if [[ -x "$dir/kube-apiserver" && -x "$dir/kubectl" && -x "$dir/etcd" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Version ldflags, as kubernetes' hack/lib/version.sh sets them, so that the
# server and kubectl report a real version.
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
kv=()
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kv+=("-X '$pkg.gitVersion=$KUBE_VERSION'" "-X '$pkg.gitMajor=$major'" "-X '$pkg.gitMinor=$minor'"
       "-X '$pkg.gitTreeState=clean'" "-X '$pkg.buildDate=1970-01-01T00:00:00Z'")
done
ldflags="-s -w ${kv[*]}"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
if [[ ! -x "$dir/kube-apiserver" || ! -x "$dir/kubectl" ]]; then
  log "building kube-apiserver and kubectl $KUBE_VERSION (first time takes about 5 minutes)"
  (cd "$root/hack/tools/kube" &&
   go build -trimpath -ldflags "$ldflags" -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver &&
   go build -trimpath -ldflags "$ldflags" -o "$tmp/kubectl" k8s.io/kubernetes/cmd/kubectl)
  mv "$tmp/kube-apiserver" "$tmp/kubectl" "$dir/"
fi
if [[ ! -x "$dir/etcd" ]]; then
  log "building etcd $ETCD_VERSION"
  (cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
  mv "$tmp/etcd" "$dir/"
fi
echo "$dir"
