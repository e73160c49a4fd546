import Core
import Foundation

/// The three package formats, told by the file's name as every distro's tools tell them.
public enum PackageFormat: String, Codable, Sendable, CaseIterable {
    case deb, rpm, apk

    public static func of(_ path: String) throws -> PackageFormat {
        let ext = (path as NSString).pathExtension.lowercased()
        guard let f = PackageFormat(rawValue: ext) else {
            throw AZLError(.usage, "\(path): not a .deb, .rpm or .apk file", hint: "pkgtest installs package files by their format")
        }
        return f
    }

    /// The tools that install this format, preferred first: the ones that resolve dependencies,
    /// then the low-level one an image may have alone.
    public var managers: [Manager] {
        switch self {
        case .deb: return [.apt, .dpkg]
        case .rpm: return [.tdnf, .dnf5, .dnf, .yum, .rpm]
        case .apk: return [.apk]
        }
    }
}

/// A package manager as pkgtest drives it: each step is a shell fragment run inside the
/// target's root (`Driver` puts them together). Fragments see `$PKGS` (the package files
/// inside the sandbox), `$NAMES` (their package names, once known) and `$OFFLINE` (1 or 0).
public enum Manager: String, Codable, Sendable, CaseIterable {
    case apt, dpkg, tdnf, dnf5, dnf, yum, rpm, apk

    /// The program whose presence in the tree says the image has this manager.
    public var program: String { self == .apt ? "apt-get" : rawValue }

    public var format: PackageFormat {
        switch self {
        case .apt, .dpkg: return .deb
        case .tdnf, .dnf5, .dnf, .yum, .rpm: return .rpm
        case .apk: return .apk
        }
    }

    /// Prints the package name of the file "$f".
    public var nameOfFile: String {
        switch format {
        case .deb: return #"dpkg-deb -f "$f" Package"#
        case .rpm: return #"rpm -qp --qf '%{NAME}\n' "$f""#
        // An .apk is gzip'd tar segments; .PKGINFO is in the first one.
        case .apk: return #"tar -xzOf "$f" .PKGINFO 2>/dev/null | sed -n 's/^pkgname = //p'"#
        }
    }

    /// Installs $PKGS with dependencies from the distro's repositories, or (offline) only from
    /// what the image has.
    public func install(offline: Bool) -> String {
        switch self {
        // Offline, the sandbox has no network: apt resolves from what the image has (its
        // --no-download refuses local files).
        case .apt:
            return offline ? "apt-get install -y -q $PKGS" : "apt-get update -q && apt-get install -y -q $PKGS"
        case .dpkg: return "dpkg -i $PKGS"
        case .tdnf, .dnf5, .dnf, .yum:
            return offline ? "\(rawValue) install -y --disablerepo='*' $PKGS" : "\(rawValue) install -y $PKGS"
        case .rpm: return "rpm -i $PKGS"
        case .apk:
            return offline ? "apk add --allow-untrusted --no-network $PKGS" : "apk add --update-cache --allow-untrusted $PKGS"
        }
    }

    /// An extended regular expression for the lines in which this tool says an install
    /// script (postinst, %post, post-install) failed.
    public var scriptFailure: String {
        switch format {
        case .deb: return "(pre|post)-(installation|removal) script subprocess returned error"
        case .rpm: return "scriptlet failed"
        case .apk: return "\\.(pre|post)-(install|upgrade): script exited with error"
        }
    }

    /// Lists what the package recorded as its own (the files of "$n").
    public var filesOf: String {
        switch format {
        case .deb: return #"dpkg -L "$n""#
        case .rpm: return #"rpm -ql "$n""#
        case .apk: return #"apk info -qL "$n" | sed '/^$/d; s|^|/|'"#
        }
    }

    /// Lists the configuration files of "$n": the ones the format lets stay after removal.
    public var configFilesOf: String {
        switch format {
        case .deb: return #"dpkg-query -W -f='${Conffiles}\n' "$n" | awk 'NF {print $1}'"#
        case .rpm: return #"rpm -qc "$n""#
        case .apk: return #"apk info -qL "$n" | sed -n 's|^etc/|/etc/|p'"#
        }
    }

    /// Verifies "$n" against what the package manager recorded; prints what differs, exits
    /// non-zero when something does. apk audits the whole system, so only the package's own
    /// files count (`files` holds them).
    public var verify: String {
        switch format {
        case .deb: return #"dpkg --verify "$n""#
        case .rpm: return #"rpm -V "$n""#
        case .apk: return #"apk audit --system | awk 'NR==FNR {own[$0]; next} ("/" $2) in own' "$O/files" - | grep . && exit 1 || exit 0"#
        }
    }

    /// Removes $NAMES.
    public var remove: String {
        switch self {
        case .apt: return "apt-get remove -y -q $NAMES"
        case .dpkg: return "dpkg -r $NAMES"
        case .tdnf: return "tdnf erase -y $NAMES"
        case .dnf5, .dnf, .yum: return "\(rawValue) remove -y $NAMES"
        case .rpm: return "rpm -e $NAMES"
        case .apk: return "apk del $NAMES"
        }
    }

    /// Where the manager keeps its own state: not a package's leftovers.
    public var ownState: [String] {
        switch format {
        case .deb: return ["/var/lib/dpkg", "/var/lib/apt"]
        // Debian's rpm keeps its database in ~/.rpmdb.
        case .rpm: return ["/var/lib/rpm", "/usr/lib/sysimage", "/var/lib/dnf", "/var/lib/tdnf", "/var/lib/yum", "/root/.rpmdb"]
        case .apk: return ["/lib/apk", "/etc/apk"]
        }
    }
}

/// Which manager installs a format in one image: the rootfs-manifest's `package_manager`
/// where the image is a known one and that manager takes the format, else the first of the
/// format's managers whose program the tree has.
public struct ManagerChoice: Equatable, Sendable {
    public var manager: Manager
    /// "manifest debian:12" or "found /usr/bin/rpm in the image".
    public var chosenBy: String

    /// `manifest`: the known image's short name and package_manager; `has`: whether the tree
    /// has a file at this absolute path.
    public static func choose(_ format: PackageFormat, manifest: (short: String, packageManager: String)?,
                              has: (String) -> Bool) -> ManagerChoice? {
        if let m = manifest, let known = Manager(rawValue: m.packageManager), format.managers.contains(known) {
            return ManagerChoice(manager: known, chosenBy: "manifest \(m.short)")
        }
        for candidate in format.managers {
            for dir in ["/usr/bin/", "/usr/sbin/", "/bin/", "/sbin/"] where has(dir + candidate.program) {
                return ManagerChoice(manager: candidate, chosenBy: "found \(dir + candidate.program) in the image")
            }
        }
        return nil
    }
}
