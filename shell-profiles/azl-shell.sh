# azl-shell: sourced by login and interactive shells inside the sandbox
# (written at /etc/profile.d/zz-azl-shell.sh in the ephemeral root; POSIX shells — ash, dash,
# bash as sh — read it through $ENV when interactive; Debian's and Ubuntu's bash show
# $debian_chroot, which run sets too).
# Why: a developer with several terminals must see at a glance which userland a shell is in,
# and tools can test $container like they do under podman/toolbox.
export container="${container:-azl-shell}"
case "$-" in
  *i*)
    # \u, \h, \w work in bash and busybox ash; dash prints them literally, so keep it short there.
    if [ -n "${BASH_VERSION:-}" ] || [ "$(readlink /bin/sh 2>/dev/null)" = "/bin/busybox" ]; then
      PS1="[azl-shell ${AZL_SHELL_IMAGE:-?}] \\u@\\h:\\w\\$ "
    else
      PS1="[azl-shell ${AZL_SHELL_IMAGE:-?}] \$ "
    fi
    ;;
esac
