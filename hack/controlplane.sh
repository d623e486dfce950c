#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kubectl) of one
# pinned Kubernetes release from the Go module proxy, once, into $PLUMB_CACHE/bin/<k8s-version>/.
# The last line on stdout is that folder (usable as KUBEBUILDER_ASSETS); progress goes to stderr.
#
# Why from source: the usual envtest download bucket is out of reach here, and k8s.io/kubernetes
# cannot be `go install`ed (its go.mod replaces the staging modules with ./staging paths). A
# throwaway module that requires k8s.io/kubernetes and pins each staging module to its published
# v0.<minor>.<patch> builds the commands.
#
# Knobs: K8S_VERSION (1.37.2), ETCD_VERSION (3.7.3), PLUMB_CACHE (~/.cache/plumb),
#        WITH_KUBECTL (0; 1 also builds kubectl, for the demo and for people).
# Cold on 2 cores: about 10-15 min and ~3 GiB of build cache; with the binaries present: < 1 s.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-3.7.3}"
PLUMB_CACHE="${PLUMB_CACHE:-${HOME}/.cache/plumb}"
BIN="${PLUMB_CACHE}/bin/${K8S_VERSION}"

log() { echo "[controlplane] $*" >&2; }
die() { echo "[controlplane] error: $*" >&2; exit 1; }

K8S_MAJOR="${K8S_VERSION%%.*}"
K8S_MINOR="${K8S_VERSION#*.}"; K8S_MINOR="${K8S_MINOR%%.*}"
STAGING_VERSION="v0.${K8S_VERSION#*.}"

# The project's go.work and toolchain settings must not leak into the throwaway modules.
export GOWORK=off GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:${PATH}"
command -v go >/dev/null 2>&1 || die "go not found"

mkdir -p "${BIN}"
exec 9>"${PLUMB_CACHE}/.controlplane.lock"
flock 9 # one build per cache at a time; parallel callers wait and then find the binaries

# has BINARY ARGS...: the binary exists and prints the wanted version. The output is read whole
# first: grep -q closing the pipe early would kill the binary and fail the pipeline.
has() {
  [ -x "$1" ] || return 1
  local out
  out="$("$@" 2>/dev/null)" || return 1
  [[ "${out}" == *"${VERSION_WANTED}"* ]]
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/plumb-controlplane.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

VERSION_WANTED="etcd Version: ${ETCD_VERSION}"
if has "${BIN}/etcd" --version; then
  log "etcd ${ETCD_VERSION} present"
else
  log "building etcd ${ETCD_VERSION}"
  start=${SECONDS}
  d="${WORK}/etcd"; mkdir -p "$d"
  cat >"$d/go.mod" <<EOF
module example.invalid/etcdbuild

go 1.26.0

require (
	go.etcd.io/etcd/api/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/client/pkg/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/client/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/pkg/v3 v${ETCD_VERSION}
	go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
)
EOF
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$d/tools.go"
  (cd "$d" && go mod tidy >&2 &&
    go build -trimpath -ldflags="-s -w" -o "${BIN}/etcd.tmp" go.etcd.io/etcd/server/v3 >&2)
  mv -f "${BIN}/etcd.tmp" "${BIN}/etcd"
  log "etcd built in $((SECONDS - start))s"
fi

VERSION_WANTED="v${K8S_VERSION}"
missing=()
for c in kube-apiserver kube-controller-manager; do
  has "${BIN}/$c" --version || missing+=("$c")
done
if [ "${WITH_KUBECTL:-0}" = 1 ]; then
  has "${BIN}/kubectl" version --client || missing+=(kubectl)
fi

if [ ${#missing[@]} -gt 0 ]; then
  log "resolving k8s.io/kubernetes v${K8S_VERSION}"
  d="${WORK}/kube"; mkdir -p "$d"
  kmod="$(cd "$d" && go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  [ -f "${kmod}" ] || die "could not download k8s.io/kubernetes@v${K8S_VERSION}"
  staging="$(awk '$2=="=>" && $3 ~ /^\.\/staging\// {print $1}' "${kmod}")"
  [ -n "${staging}" ] || die "no staging replaces in ${kmod}"
  {
    printf 'module example.invalid/kubebuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\nreplace (\n' "${K8S_VERSION}"
    for m in ${staging}; do printf '\t%s => %s %s\n' "$m" "$m" "${STAGING_VERSION}"; done
    printf ')\n'
  } >"$d/go.mod"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for c in kube-apiserver kube-controller-manager kubectl; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
    printf ')\n'
  } >"$d/tools.go"
  (cd "$d" && go mod tidy >&2)

  # Stamp the version: unstamped, /version says v0.0.0-master and kubeVersion checks fail.
  LD="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    LD="${LD} -X $p.gitVersion=v${K8S_VERSION} -X $p.gitMajor=${K8S_MAJOR} -X $p.gitMinor=${K8S_MINOR}"
    LD="${LD} -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "${missing[@]}"; do
    log "building $c v${K8S_VERSION}"
    start=${SECONDS}
    (cd "$d" && go build -trimpath -ldflags="${LD}" -o "${BIN}/$c.tmp" "k8s.io/kubernetes/cmd/$c" >&2)
    mv -f "${BIN}/$c.tmp" "${BIN}/$c"
    log "$c built in $((SECONDS - start))s"
  done
else
  log "Kubernetes v${K8S_VERSION} binaries present"
fi

echo "${BIN}"
