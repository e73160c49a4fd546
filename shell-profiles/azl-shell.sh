# azl-shell: sourced by login and interactive shells inside the sandbox
# (bound read-only at /etc/profile.d/zz-azl-shell.sh; bash also reads it through $ENV/BASH_ENV).
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
