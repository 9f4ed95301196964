# Shell helpers shared by scripts/vm-* and scripts/cross-* (sourced, not run).
#
# Everything the VM and cross tiers install or build is cached under $OCXL_WORK
# (default tests/vm/work, ignored by git), so a second run reuses it.

OCXL_ROOT=${OCXL_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
OCXL_WORK=${OCXL_WORK:-$OCXL_ROOT/tests/vm/work}
OCXL_T0=${OCXL_T0:-$SECONDS}

# "[  12s] message" on stderr: every stage shows when it started.
say() { printf '[%4ss] %s\n' "$((SECONDS - OCXL_T0))" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# Runs "$@" and records "<label> <seconds>s" in OCXL_TIMINGS (printed by print_timings).
OCXL_TIMINGS=()
timed() {
    local label=$1 t0=$SECONDS rc=0
    shift
    "$@" || rc=$?
    OCXL_TIMINGS+=("$(printf '%-48s %5ss%s' "$label" "$((SECONDS - t0))" "$([ $rc = 0 ] || echo " (FAILED rc=$rc)")")")
    return $rc
}
print_timings() {
    [ ${#OCXL_TIMINGS[@]} -gt 0 ] || return 0
    echo "timings:"
    printf '    %s\n' "${OCXL_TIMINGS[@]}"
}

need_root() {
    [ "$(id -u)" = 0 ] || die "$1 needs root (apt-get, chroot, mount); run it as root or with sudo"
}

# The Debian mirror apt already uses on this host (deb822 or one-line sources), so no
# host name is written into the repository. OCXL_MIRROR overrides it.
debian_mirror() {
    if [ -n "${OCXL_MIRROR:-}" ]; then
        echo "${OCXL_MIRROR%/}"
        return
    fi
    local m
    m=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -vE '^[[:space:]]*#' | grep -oE 'https?://[^[:space:]"]+' | grep -E '/debian/?$' | head -n1 || true)
    [ -n "$m" ] || die "no Debian mirror in the apt sources; set OCXL_MIRROR=<mirror URL>"
    echo "${m%/}"
}

# Installs host packages that are missing, from the host's own release only.
# An index that fails to download (a foreign architecture's, a mirror mid-sync) must
# not stop us, so `apt-get update` errors are reported and tolerated.
host_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing+=("$p")
    done
    [ ${#missing[@]} -gt 0 ] || return 0
    need_root "installing ${missing[*]}"
    say "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -q -o DPkg::Lock::Timeout=300 >/dev/null 2>&1 || say "warning: apt-get update reported errors; continuing"
        apt-get install -y -q -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null ||
            die "could not install ${missing[*]} on the host"
    fi
}

# Copies the host's apt Acquire:: settings (proxy, validity), DNS and locally added CA
# certificates (TLS-intercepting proxies) into the root at $1.
copy_host_net_config() {
    local root=$1 f
    mkdir -p "$root/etc/apt/apt.conf.d" "$root/usr/local/share/ca-certificates"
    for f in /etc/apt/apt.conf.d/*; do
        [ -f "$f" ] && grep -qE '^[[:space:]]*Acquire::' "$f" && cp "$f" "$root/etc/apt/apt.conf.d/"
    done
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
        cp -a /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
    fi
}
