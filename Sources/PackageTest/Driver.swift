import Foundation

/// The steps of a package test, in order. Each runs in the same root, one after another.
public enum Step: String, Codable, Sendable, CaseIterable {
    case install, verify, libraries, smoke, remove
}

/// The script one sandbox runs for one target: every step in the same ephemeral root, each
/// step's output in `STEP.log` and its exit status and times (from /proc/uptime: every image
/// has it, not every `date` has nanoseconds) in `STEP.status` of the bound results folder.
/// A failed install ends the run (nothing to check); other failures do not.
public struct Driver {
    public var manager: Manager
    /// The package files as the sandbox sees them.
    public var packages: [String]
    public var offline: Bool
    /// nil: each installed executable in /usr/bin with --version.
    public var smoke: String?
    /// Where the results folder is bound inside.
    public var results: String
    /// Host paths bound into the root (the working directory, the packages): not the package's.
    public var binds: [String]

    public init(manager: Manager, packages: [String], offline: Bool, smoke: String?, results: String, binds: [String]) {
        self.manager = manager; self.packages = packages; self.offline = offline; self.smoke = smoke
        self.results = results; self.binds = binds
    }

    /// Paths never part of a package's footprint: the kernel's, the sandbox's, scratch space,
    /// caches (ldconfig's, the managers'), logs, and the manager's own state.
    var notFootprint: [String] {
        ["/proc", "/sys", "/dev", "/run", "/tmp", "/var/tmp", "/var/cache", "/var/log", results] + binds + manager.ownState
    }

    public var script: String {
        let prune = notFootprint.map { "-path \(quote($0))" }.joined(separator: " -o ")
        return """
        #!/bin/sh
        # Written by azl-shell pkgtest: one target's steps (docs/pkgtest.md).
        O=\(quote(results))
        PKGS=\(quote(packages.joined(separator: " ")))
        OFFLINE=\(offline ? 1 : 0)
        export DEBIAN_FRONTEND=noninteractive LC_ALL=C
        say() { echo "azl-pkgtest: $*"; }
        now() { read -r up _ < /proc/uptime; echo "$up"; }
        step() {
          name=$1; shift; t0=$(now)
          ( set +e; "$@" ) > "$O/$name.log" 2>&1; rc=$?
          echo "$rc $t0 $(now)" > "$O/$name.status"
          return $rc
        }
        footprint() { find / -xdev \\( \(prune) \\) -prune -o -print 2>/dev/null | sort; }

        do_install() {
          NAMES=
          for f in $PKGS; do
            n=$(\(manager.nameOfFile))
            [ -n "$n" ] || { say "cannot read the package name of ${f##*/}"; return 1; }
            NAMES="$NAMES $n"
          done
          echo "$NAMES" > "$O/names"
          footprint > "$O/before"
          echo "+ \(manager.install(offline: offline))"
          \(manager.install(offline: offline)) > "$O/install.out" 2>&1; rc=$?
          cat "$O/install.out"
          if [ $rc -ne 0 ]; then
            grep -E \(quote(manager.scriptFailure)) "$O/install.out" | head -n 3 | while read -r l; do say "install script failed: $l"; done
            return $rc
          fi
          : > "$O/files"; : > "$O/config"
          for n in $NAMES; do
            \(manager.filesOf) >> "$O/files" || { say "$n is not installed after the install"; return 1; }
            \(manager.configFilesOf) >> "$O/config" 2>/dev/null
          done
        }

        # dpkg --verify reports files an image's dpkg path-exclude keeps out (slim images drop
        # docs) as missing: those are the image's choice, not the package's fault.
        excluded() {
          set -f
          for p in $(cat /etc/dpkg/dpkg.cfg.d/* 2>/dev/null | sed -n 's/^path-exclude[= ]//p'); do
            case "$1" in $p) set +f; return 0 ;; esac
          done
          set +f; return 1
        }
        do_verify() {
          bad=0
          for n in $(cat "$O/names"); do
            out=$(\(manager.verify) 2>&1); rc=$?
            [ $rc -eq 0 ] && continue
            echo "$out" | while read -r l; do
              p=${l##* }
              case "$l" in missing*) excluded "$p" && continue ;; esac
              say "$n: $l"
            done | grep . && bad=1
            [ $rc -ne 0 ] && [ -z "$out" ] && { say "$n: verify exited $rc"; bad=1; }
          done
          [ $bad -eq 0 ] && echo "no differences from the package database"
          return $bad
        }

        do_libraries() {
          if command -v ldd >/dev/null 2>&1; then list() { ldd "$1" 2>&1; }
          else
            ld=$(ls /lib/ld-musl-*.so.1 /lib64/ld-linux-*.so.* /lib/ld-linux*.so.* 2>/dev/null | head -n 1)
            [ -n "$ld" ] || { say "no ldd and no dynamic loader in the image: not checked"; return 0; }
            list() { "$ld" --list "$1" 2>&1; }
          fi
          bad=0; n=0
          while read -r f; do
            [ -f "$f" ] && [ ! -L "$f" ] || continue
            [ "$(head -c 4 "$f" | tr -d '\\000')" = "$(printf '\\177ELF')" ] || continue
            n=$((n + 1))
            list "$f" > "$O/ldd.one"
            # glibc: "libx.so.1 => not found"; musl: "Error loading shared library libx.so.1: ..."
            for lib in $(sed -n -e 's/^[[:space:]]*\\([^[:space:]]*\\) => not found.*/\\1/p' \\
                                -e 's/^Error loading shared library \\([^:]*\\): .*/\\1/p' "$O/ldd.one" | sort -u); do
              say "missing $lib, needed by $f"; bad=1
            done
          done < "$O/files"
          echo "$n ELF files checked"
          return $bad
        }

        do_smoke() {
        \(smokeBody)
        }

        do_remove() {
          echo "+ \(manager.remove)"
          \(manager.remove) || return $?
          footprint > "$O/after"
          comm -13 "$O/before" "$O/after" | grep -vxF -f "$O/config" > "$O/left" || true
          [ -s "$O/left" ] || { echo "removed, nothing left behind"; return 0; }
          say "left behind: $(head -n 1 "$O/left")$( [ "$(wc -l < "$O/left")" -gt 1 ] && echo " and $(($(wc -l < "$O/left") - 1)) more")"
          cat "$O/left"
          return 1
        }

        step install do_install || exit 0
        NAMES=$(cat "$O/names")
        step verify do_verify
        step libraries do_libraries
        step smoke do_smoke
        step remove do_remove
        exit 0

        """
    }
}

extension Driver {
    /// The smoke command given, or each installed executable in /usr/bin with --version.
    var smokeBody: String {
        if let smoke { return "echo \(quote("+ " + smoke)); sh -c \(quote(smoke))" }
        return """
          bad=0; n=0
          for f in $(grep '^/usr/bin/[^/]*$' "$O/files"); do
            [ -f "$f" ] && [ -x "$f" ] || continue
            n=$((n + 1)); echo "+ $f --version"
            if command -v timeout >/dev/null 2>&1; then timeout 60 "$f" --version; else "$f" --version; fi
            rc=$?; [ $rc -eq 0 ] || { say "$f --version exited $rc"; bad=1; }
          done
          echo "$n executables in /usr/bin run"
          return $bad
        """
    }
}

/// Single-quoted for sh.
func quote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
