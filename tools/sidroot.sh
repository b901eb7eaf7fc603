#!/usr/bin/env bash
# A Debian sid root holding CPython 3.14 and 3.15 (+ -dev, -venv, gcc) for the test matrix,
# and 3.14's debug build (python3.14-dbg, its headers in libpython3.14-dbg) for debug-3.14.
#
#   tools/sidroot.sh ensure           make the root unless a current one is present (stamp file)
#   tools/sidroot.sh run [--] CMD...  run CMD inside the root, cwd = the caller's cwd
#   tools/sidroot.sh teardown         delete the root (refuses while anything is mounted in it)
#   tools/sidroot.sh path|status      print where the root is / whether it is ready
#
# Why a root: pyenv here stops at 3.13 and Debian packages 3.14/3.15 only in sid, whose
# binaries need sid's libc. The root lives outside the work tree (default
# /var/tmp/fastfnpickle-sidroot, override with FASTFNPICKLE_SIDROOT) so one root serves every
# clone and tools walking the tree never descend into a whole Debian system; the venvs made
# with it live in the work tree, which `run` bind-mounts at the same path inside the root.
#
# Mounts: `run` (and the apt step of `ensure`) mount /proc, /dev (read-only bind: device nodes
# stay usable, but nothing can delete the host's nodes through it), /dev/shm and the work tree
# inside a private mount namespace (unshare -m). The mounts exist only for that process tree
# and vanish with it even when it is killed, so the host never sees a mount under the root and
# an `rm -rf` of the root cannot reach through one. Without unshare the script mounts in the
# host namespace and unmounts on exit (trap), and `teardown` refuses while anything is mounted.
#
# It fails loudly (non-zero, with the reason) when the root cannot be made; it never skips.
set -euo pipefail

RECIPE=2  # bump when the recipe below changes: an older root is rebuilt
# The testsuite packages carry CPython's test.pickletester, which tests/test_pickletester.py runs.
# python3.14-dbg is the debug interpreter (reference-count and assertion checks); the debug
# ABI's pyconfig.h and build configuration are in libpython3.14-dbg (named for clarity: it is
# also a dependency).
PACKAGES="python3.14 python3.14-dev python3.14-venv libpython3.14-testsuite python3.15 python3.15-dev python3.15-venv libpython3.15-testsuite gcc libc6-dev python3.14-dbg libpython3.14-dbg"
SIDROOT="${FASTFNPICKLE_SIDROOT:-/var/tmp/fastfnpickle-sidroot}"
STAMP="$SIDROOT/.fastfnpickle-sidroot-stamp"
LOCK="$SIDROOT.lock"
WORKTREE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
APT_OPTS=(-o Acquire::Check-Valid-Until=false -o APT::Install-Recommends=false -o Dpkg::Use-Pty=0 -q)

say() { printf 'sidroot: %s\n' "$*" >&2; }
die() { printf 'sidroot: ERROR: %s\n' "$*" >&2; exit 1; }

stamp_text() { printf 'recipe=%s\npackages=%s\n' "$RECIPE" "$PACKAGES"; }

ready() { [[ -f "$STAMP" ]] && [[ "$(cat "$STAMP")" == "$(stamp_text)" ]]; }

# Mount points under $1 as the current mount namespace sees them (mountinfo field 5).
mounts_under() {
    local dir
    dir="$(realpath -m "$1")"
    awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo
}

have_unshare() { unshare -m --propagation private true 2>/dev/null; }

# The Debian mirror the machine's apt sources name (never written into the repo).
find_mirror() {
    if [[ -n "${FASTFNPICKLE_SID_MIRROR:-}" ]]; then echo "$FASTFNPICKLE_SID_MIRROR"; return; fi
    local f uri
    # deb822 .sources files: the first "URIs:" of a stanza whose suites are not -security.
    for f in /etc/apt/sources.list.d/*.sources; do
        [[ -f "$f" ]] || continue
        uri="$(awk '
            BEGIN { IGNORECASE = 1 }
            /^[[:space:]]*$/ { if (u != "" && s !~ /-security/ && t ~ /(^| )deb( |$)/) { print u; exit } u = s = t = ""; next }
            /^URIs:/   { u = $2 }
            /^Suites:/ { s = $0 }
            /^Types:/  { t = $0 " " }
            END { if (u != "" && s !~ /-security/ && t ~ /(^| )deb( |$)/) print u }' "$f" | head -n1)"
        if [[ "$uri" == *debian* ]]; then echo "${uri%/}"; return; fi
    done
    # One-line sources.list format.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -f "$f" ]] || continue
        uri="$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { if ($(i+1) !~ /-security/) { print $i; exit } break } }' "$f")"
        if [[ "$uri" == *debian* ]]; then echo "${uri%/}"; return; fi
    done
    return 1
}

# Copy a file to the same path inside root $1 (pip needs the config and what it names).
copy_in() {
    local root="$1" src="$2"
    [[ -f "$src" ]] || return 0
    mkdir -p "$root$(dirname "$src")"
    cp -L "$src" "$root$src"
}

# pip configuration, the certificate/constraint files it names, and resolv.conf. Done after apt:
# installing ca-certificates inside the root rewrites the certificate bundle.
copy_host_config() {
    local root="$1" conf value
    local confs=(/etc/pip.conf /etc/xdg/pip/pip.conf "$HOME/.config/pip/pip.conf" "$HOME/.pip/pip.conf")
    [[ -n "${PIP_CONFIG_FILE:-}" ]] && confs+=("$PIP_CONFIG_FILE")
    for conf in "${confs[@]}"; do
        [[ -f "$conf" ]] || continue
        # The root's HOME is /root: map the caller's home onto it.
        local dest="${conf/#$HOME//root}"
        mkdir -p "$root$(dirname "$dest")"
        cp -L "$conf" "$root$dest"
        # Any value that is an existing absolute file path (cert, constraint, ...) goes along.
        while read -r value; do
            copy_in "$root" "$value"
        done < <(sed -n 's/^[^#;=]*=[[:space:]]*\(\/[^[:space:]]*\)[[:space:]]*$/\1/p' "$conf")
    done
    for value in "${PIP_CERT:-}" "${PIP_CONSTRAINT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}"; do
        [[ -n "$value" ]] && copy_in "$root" "$value"
    done
    if [[ -f /etc/resolv.conf ]]; then
        rm -f "$root/etc/resolv.conf"  # may be a dangling symlink in a fresh root
        cp -L /etc/resolv.conf "$root/etc/resolv.conf"
    fi
}

# Body of `run`, executed in the private mount namespace (or on the host as a fallback).
# Usage: _inside ROOT CWD CMD...
_inside() {
    local root="$1" cwd="$2"; shift 2
    local mounted=()
    cleanup() {
        local i
        for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
            umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
        done
    }
    trap cleanup EXIT
    mnt() {  # mnt TARGET mount-args...
        local target="$1"; shift
        mkdir -p "$target"
        mount "$@" "$target"
        mounted+=("$target")
    }
    mnt "$root/proc" --bind /proc
    mnt "$root/dev" --bind /dev
    mount -o remount,bind,ro "$root/dev"
    mnt "$root/dev/shm" --bind /dev/shm
    if [[ -n "$BIND_WORKTREE" ]]; then
        mnt "$root$BIND_WORKTREE" --bind "$BIND_WORKTREE"
    fi
    # A clean environment: the host's PATH names pyenv shims that do not exist in the root.
    local envs=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
                LANG=C.UTF-8 TERM="${TERM:-dumb}" DEBIAN_FRONTEND=noninteractive)
    local name
    while read -r name; do
        envs+=("$name=${!name}")
    done < <(compgen -e | grep -E '^(PIP_|FASTFNPICKLE_|PYTHON|PYTEST|HYPOTHESIS|CI$|FORCE_COLOR$|NO_COLOR$|VIRTUAL_ENV$|SOURCE_DATE_EPOCH$)' | grep -v '^FASTFNPICKLE_SIDROOT$')
    local rc=0
    chroot "$root" /usr/bin/env -i "${envs[@]}" /bin/sh -c 'cd "$1" && shift && exec "$@"' sh "$cwd" "$@" || rc=$?
    cleanup
    mounted=()
    trap - EXIT
    return "$rc"
}

# Run CMD in ROOT with the mounts above. Usage: in_root ROOT CWD CMD...
in_root() {
    if have_unshare; then
        BIND_WORKTREE="$BIND_WORKTREE" unshare -m --propagation private \
            bash "${BASH_SOURCE[0]}" _inside "$@"
    else
        say "unshare -m unavailable: mounting in the host namespace (unmounted on exit)"
        _inside "$@"
    fi
}

create() {
    [[ "$(id -u)" == 0 ]] || die "making the sid root needs root (debootstrap, chroot, mount); running as uid $(id -u)"
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap with apt"
        command -v apt-get >/dev/null || die "no debootstrap and no apt-get to install it"
        apt-get "${APT_OPTS[@]}" install -y debootstrap >&2 \
            || { apt-get "${APT_OPTS[@]}" update >&2 && apt-get "${APT_OPTS[@]}" install -y debootstrap >&2; } \
            || die "could not install debootstrap with apt"
    fi
    local mirror
    mirror="$(find_mirror)" || die "no Debian mirror found in /etc/apt/sources.list{,.d/*} (set FASTFNPICKLE_SID_MIRROR to one)"
    local partial="$SIDROOT.partial"
    remove_tree "$partial"
    [[ -e "$SIDROOT" ]] && remove_tree "$SIDROOT"
    mkdir -p "$(dirname "$SIDROOT")"

    say "debootstrap --variant=minbase sid $partial $mirror"
    local t0=$SECONDS
    # In a private namespace too: debootstrap mounts /proc in the target and a failure midway
    # must not leave that mount behind.
    if have_unshare; then
        unshare -m --propagation private debootstrap --variant=minbase sid "$partial" "$mirror" >&2 \
            || die "debootstrap of sid from $mirror failed (log: $partial/debootstrap/debootstrap.log)"
    else
        debootstrap --variant=minbase sid "$partial" "$mirror" >&2 \
            || die "debootstrap of sid from $mirror failed (log: $partial/debootstrap/debootstrap.log)"
    fi
    say "debootstrap took $((SECONDS - t0))s"

    t0=$SECONDS
    # The mirror's sid Release file reads as expired on these machines: Check-Valid-Until=false.
    BIND_WORKTREE="" in_root "$partial" / sh -c "apt-get ${APT_OPTS[*]} update && apt-get ${APT_OPTS[*]} install -y $PACKAGES && apt-get clean" >&2 \
        || die "apt-get could not install $PACKAGES in the sid root (mirror $mirror)"
    say "installing $PACKAGES took $((SECONDS - t0))s"
    copy_host_config "$partial"
    local v
    for v in 3.14 3.15; do
        BIND_WORKTREE="" in_root "$partial" / "python$v" -c 'import sys; print("sidroot: python" + sys.version.split()[0], "ready")' >&2 \
            || die "python$v does not run inside the sid root"
    done
    stamp_text > "$partial/.fastfnpickle-sidroot-stamp"
    mv "$partial" "$SIDROOT"
    say "sid root ready at $SIDROOT"
}

# rm -rf guarded against live mounts: through a bind mount of /dev it would delete the host's
# device nodes, through the work tree's bind the sources.
remove_tree() {
    local dir="$1" left
    [[ -e "$dir" ]] || return 0
    left="$(mounts_under "$dir")"
    if [[ -n "$left" ]]; then
        die "refusing to delete $dir: still mounted under it: $(echo $left) (unmount them, then retry)"
    fi
    # --one-file-system: even a mount this namespace cannot see stops the recursion.
    rm -rf --one-file-system "$dir"
    [[ ! -e "$dir" ]] || die "could not delete $dir completely (a mount under it?)"
}

# Whether the root was made by this recipe with a subset of today's packages: then adding the
# missing ones in place is enough (no new debootstrap).
upgradable() {
    [[ -f "$STAMP" ]] || return 1
    local recipe old pkg
    recipe="$(sed -n 's/^recipe=//p' "$STAMP")"
    old="$(sed -n 's/^packages=//p' "$STAMP")"
    [[ "$recipe" == "$RECIPE" && -n "$old" ]] || return 1
    for pkg in $old; do
        [[ " $PACKAGES " == *" $pkg "* ]] || return 1
    done
}

upgrade() {
    local t0=$SECONDS
    say "adding packages to the sid root at $SIDROOT: $PACKAGES"
    BIND_WORKTREE="" in_root "$SIDROOT" / sh -c "apt-get ${APT_OPTS[*]} update && apt-get ${APT_OPTS[*]} install -y $PACKAGES && apt-get clean" >&2 \
        || die "apt-get could not install $PACKAGES in the sid root"
    copy_host_config "$SIDROOT"  # apt may have rewritten the certificate bundle
    stamp_text > "$STAMP"
    say "installing the new packages took $((SECONDS - t0))s"
}

ensure() {
    if ready; then return 0; fi
    [[ "$(id -u)" == 0 ]] || die "making the sid root needs root (debootstrap, chroot, mount); running as uid $(id -u)"
    mkdir -p "$(dirname "$LOCK")"
    exec 9>"$LOCK"
    flock -x 9  # one creator; runs and teardown wait
    if ! ready; then  # another process may have made it while we waited
        local t0=$SECONDS
        if upgradable; then
            upgrade
        else
            create
        fi
        say "sid root made in $((SECONDS - t0))s"
    fi
    flock -u 9
}

cmd="${1:-}"; [[ $# -gt 0 ]] && shift
case "$cmd" in
    ensure)
        ensure
        ;;
    run)
        [[ "${1:-}" == "--" ]] && shift
        [[ $# -gt 0 ]] || die "usage: tools/sidroot.sh run [--] CMD..."
        [[ "$(id -u)" == 0 ]] || die "running in the sid root needs root (chroot, mount); running as uid $(id -u)"
        ensure
        cwd="$(pwd -P)"
        case "$cwd/" in
            "$WORKTREE"/*) ;;
            *) die "run from inside the work tree ($WORKTREE); cwd is $cwd" ;;
        esac
        exec 9>"$LOCK"
        flock -s 9  # teardown waits for running commands
        BIND_WORKTREE="$WORKTREE" in_root "$SIDROOT" "$cwd" "$@"
        ;;
    _inside)
        _inside "$@"
        ;;
    teardown)
        mkdir -p "$(dirname "$LOCK")"
        exec 9>"$LOCK"
        flock -x 9
        remove_tree "$SIDROOT.partial"
        remove_tree "$SIDROOT"
        say "removed $SIDROOT"
        ;;
    path)
        echo "$SIDROOT"
        ;;
    status)
        if ready; then echo "ready: $SIDROOT"; else echo "absent or outdated: $SIDROOT"; exit 1; fi
        ;;
    *)
        sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
        exit 2
        ;;
esac
