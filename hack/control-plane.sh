#!/usr/bin/env bash
# Builds the real control-plane binaries (kube-apiserver, kube-controller-manager,
# kubectl, etcd) from the Go module proxy, once per version, into a cache outside
# the work tree, and prints the directory that holds them (usable as
# KUBEBUILDER_ASSETS).
#
#   hack/control-plane.sh            build if missing, print the directory
#
# Versions come from the tools modules under hack/tools. The cache key is the
# versions and the set of binaries: a directory is used only when its stamp
# file lists exactly the binaries built here, so a cache made before a binary
# was added is rebuilt whole, never half used.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$root/hack/tools/kube/go.mod")}
ETCD_VERSION=${ETCD_VERSION:-$(awk '$1=="require" && $2=="go.etcd.io/etcd/server/v3" {print $3}' "$root/hack/tools/etcd/go.mod")}
cache=${PORTCULLIS_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis}
dir="$cache/control-plane/kube-${KUBE_VERSION}_etcd-${ETCD_VERSION}"

# The binaries built from k8s.io/kubernetes, in one go build so that the
# packages they share compile once.
kube_cmds=(kube-apiserver kube-controller-manager kubectl)
want="kube ${KUBE_VERSION}: ${kube_cmds[*]}; etcd ${ETCD_VERSION}: etcd"
stamp="$dir/.complete"

log() { echo "control-plane: $*" >&2; }

complete() {
  [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] || return 1
  local b
  for b in "${kube_cmds[@]}" etcd; do [[ -x "$dir/$b" ]] || return 1; done
}

if complete; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
rm -f "$stamp"
tmp=$(mktemp -d "$dir/.build.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# Version ldflags, as kubernetes' hack/lib/version.sh sets them, so that the
# servers and kubectl report a real version.
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
kv=()
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kv+=("-X '$pkg.gitVersion=$KUBE_VERSION'" "-X '$pkg.gitMajor=$major'" "-X '$pkg.gitMinor=$minor'"
       "-X '$pkg.gitTreeState=clean'" "-X '$pkg.buildDate=1970-01-01T00:00:00Z'")
done
ldflags="-s -w ${kv[*]}"

export CGO_ENABLED=0 GOFLAGS=-mod=mod
start=$SECONDS
log "building ${kube_cmds[*]} $KUBE_VERSION (the first time takes about 20 minutes on 2 cores)"
pkgs=()
for c in "${kube_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
(cd "$root/hack/tools/kube" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
log "building etcd $ETCD_VERSION"
(cd "$root/hack/tools/etcd" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
for b in "${kube_cmds[@]}" etcd; do mv -f "$tmp/$b" "$dir/$b"; done
echo "$want" > "$stamp"
log "built in $((SECONDS - start))s"
echo "$dir"
