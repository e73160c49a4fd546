/// The i386 branch of the seccomp program, assembled here and put ahead of libseccomp's
/// native program.
///
/// Why not libseccomp: it adds a rule for another architecture by translating the *name* of
/// the native number through its own tables, so i386-only calls (`oldolduname`, `stime`,
/// `clock_settime64`, the `*_time64` family) and anything newer than libseccomp 2.5.4 (i386
/// 451-470) cannot be expressed. The branch compares the i386 numbers of
/// kernel-data/syscalls-i386.tsv, as a binary search over them (as libseccomp lays out its own
/// program): the kernel runs the whole program for every number of both ABIs once when it is
/// installed (its action cache), and a list of compares made that ~50 us of every run's start;
/// every other architecture falls through to libseccomp's program unchanged (x32 and AArch32:
/// its "bad arch" action, ENOSYS).
struct CompatBranch {
    /// One rule of the branch, in the order they are tried (the first match decides).
    enum Rule: Equatable {
        /// `lo...hi` -> ENOSYS (a run of consecutive gated numbers).
        case gate(ClosedRange<Int32>)
        case notify(Int32)
        case deny(Int32, DeniedCall.Condition)
    }

    let abi: CompatABI
    let rules: [Rule]

    init(abi: CompatABI, gated: [Syscall], notified: [Syscall], denied: [(nr: Int32, condition: DeniedCall.Condition)]) {
        self.abi = abi
        var r: [Rule] = []
        // Gated first: a call both gated and denied answers what the target kernel says.
        var run: ClosedRange<Int32>? = nil
        for nr in gated.map(\.nr).sorted() {
            if let cur = run, nr == cur.upperBound + 1 { run = cur.lowerBound...nr; continue }
            if let cur = run { r.append(.gate(cur)) }
            run = nr...nr
        }
        if let cur = run { r.append(.gate(cur)) }
        r += notified.map { .notify($0.nr) }
        r += denied.map { .deny($0.nr, $0.condition) }
        rules = r
    }

    // Classic BPF opcodes and seccomp return values (linux/filter.h, linux/seccomp.h).
    private static let ldAbs: UInt16 = 0x20, jeq: UInt16 = 0x15, jge: UInt16 = 0x35, jgt: UInt16 = 0x25
    private static let ja: UInt16 = 0x05, ret: UInt16 = 0x06, andK: UInt16 = 0x54
    static let retAllow: UInt32 = 0x7fff_0000, retNotify: UInt32 = 0x7fc0_0000
    static func retErrno(_ e: Int32) -> UInt32 { 0x0005_0000 | (UInt32(e) & 0xffff) }

    private struct Insn { var code: UInt16; var jt: UInt8 = 0; var jf: UInt8 = 0; var k: UInt32 }

    /// The numbers LO...HI and the rules on them, in their order.
    private struct Key { var lo: Int32; var hi: Int32; var rules: [Rule] }

    private func keys() -> [Key]? {
        var keys: [Key] = []
        for rule in rules {
            let (lo, hi): (Int32, Int32) = {
                switch rule {
                case .gate(let r): return (r.lowerBound, r.upperBound)
                case .notify(let nr), .deny(let nr, _): return (nr, nr)
                }
            }()
            if let i = keys.firstIndex(where: { $0.lo == lo && $0.hi == hi }) { keys[i].rules.append(rule); continue }
            // Overlapping numbers would make the order of the rules matter across keys.
            if keys.contains(where: { $0.lo <= hi && lo <= $0.hi }) { return nil }
            keys.append(Key(lo: lo, hi: hi, rules: [rule]))
        }
        return keys.sorted { $0.lo < $1.lo }
    }

    /// With A the number: a search over KEYS (sorted), each path ending in a return (ALLOW when
    /// no key has the number); nil when a jump would not fit classic BPF's 8 bits.
    private func tree(_ keys: ArraySlice<Key>) -> [Insn]? {
        if keys.count <= 3 {
            return linear(keys.flatMap(\.rules)) + [Insn(code: Self.ret, k: Self.retAllow)]
        }
        let mid = keys.startIndex + keys.count / 2
        guard let left = tree(keys[..<mid]), let right = tree(keys[mid...]), left.count <= 255 else { return nil }
        return [Insn(code: Self.jge, jt: UInt8(left.count), k: UInt32(keys[mid].lo))] + left + right
    }

    private func body() -> [Insn] {
        let load = Insn(code: Self.ldAbs, k: 0)                            // A = seccomp_data.nr
        if let keys = keys(), let t = tree(keys[...]) { return [load] + t }
        return [load] + linear(rules) + [Insn(code: Self.ret, k: Self.retAllow)]
    }

    /// RULES as compares tried in turn, with A the number (and again after each), falling
    /// through at the end.
    private func linear(_ rules: [Rule]) -> [Insn] {
        let enosys = Self.retErrno(KernelPolicy.gatedErrno), eperm = Self.retErrno(KernelPolicy.deniedErrno)
        var p: [Insn] = []
        for rule in rules {
            switch rule {
            case .gate(let r) where r.lowerBound == r.upperBound:
                p += [Insn(code: Self.jeq, jf: 1, k: UInt32(r.lowerBound)), Insn(code: Self.ret, k: enosys)]
            case .gate(let r):
                p += [Insn(code: Self.jge, jf: 2, k: UInt32(r.lowerBound)), Insn(code: Self.jgt, jt: 1, k: UInt32(r.upperBound)),
                      Insn(code: Self.ret, k: enosys)]
            case .notify(let nr):
                p += [Insn(code: Self.jeq, jf: 1, k: UInt32(nr)), Insn(code: Self.ret, k: Self.retNotify)]
            case .deny(let nr, .always):
                p += [Insn(code: Self.jeq, jf: 1, k: UInt32(nr)), Insn(code: Self.ret, k: eperm)]
            case .deny(let nr, let c):
                // (arg & mask) == value on the low word, and on the high word unless the kernel
                // reads only an int (ioctl's command). i386 arguments are zero-extended.
                let (i, mask, value, both): (UInt32, UInt64, UInt64, Bool) = {
                    switch c {
                    case .ioctlCommand(let cmd): return (1, 0xffff_ffff, UInt64(cmd), false)
                    case let .argMaskedEquals(i, m, v): return (i, m, v, true)
                    case .always: return (0, 0, 0, false)
                    }
                }()
                var test: [Insn] = [Insn(code: Self.ldAbs, k: 16 + 8 * i), Insn(code: Self.andK, k: UInt32(truncatingIfNeeded: mask)),
                                    Insn(code: Self.jeq, k: UInt32(truncatingIfNeeded: value))]
                if both {
                    test += [Insn(code: Self.ldAbs, k: 20 + 8 * i), Insn(code: Self.andK, k: UInt32(truncatingIfNeeded: mask >> 32)),
                             Insn(code: Self.jeq, k: UInt32(truncatingIfNeeded: value >> 32))]
                }
                // Every miss jumps to the reload of the number after the ret.
                let n = test.count
                var block = [Insn(code: Self.jeq, jf: UInt8(n + 1), k: UInt32(nr))]
                for (j, var t) in test.enumerated() {
                    if t.code == Self.jeq { t.jf = UInt8(n - j) }
                    block.append(t)
                }
                p += block + [Insn(code: Self.ret, k: eperm), Insn(code: Self.ldAbs, k: 0)]
            }
        }
        return p
    }

    /// `struct sock_filter[]` bytes to put in front of libseccomp's program: "arch is the
    /// compat ABI? then the branch, else jump over it".
    func prefix() -> [UInt8] {
        let b = body()
        let head = [Insn(code: Self.ldAbs, k: 4),                          // A = seccomp_data.arch
                    Insn(code: Self.jeq, jt: 1, k: abi.auditArch),
                    Insn(code: Self.ja, k: UInt32(b.count))]
        var out: [UInt8] = []
        out.reserveCapacity((head.count + b.count) * 8)
        for i in head + b {
            withUnsafeBytes(of: i.code.littleEndian) { out += $0 }
            out += [i.jt, i.jf]
            withUnsafeBytes(of: i.k.littleEndian) { out += $0 }
        }
        return out
    }

    /// The branch in libseccomp's pseudo filter code style, for `azl-shell kernel --filter`.
    func pseudoCode() -> String {
        var s = "#\n# filter for arch \(abi.rawValue) (\(abi.auditArch)), assembled by azl-shell ahead of libseccomp's program\n"
        s += "if ($arch == \(abi.auditArch))\n"
        for rule in rules {
            switch rule {
            case .gate(let r) where r.lowerBound == r.upperBound:
                s += "  if ($syscall == \(r.lowerBound))\n    action ERRNO(\(KernelPolicy.gatedErrno));\n"
            case .gate(let r):
                s += "  if ($syscall >= \(r.lowerBound) && $syscall <= \(r.upperBound))\n    action ERRNO(\(KernelPolicy.gatedErrno));\n"
            case .notify(let nr):
                s += "  if ($syscall == \(nr))\n    action 0x7fc00000;\n"
            case .deny(let nr, .always):
                s += "  if ($syscall == \(nr))\n    action ERRNO(\(KernelPolicy.deniedErrno));\n"
            case .deny(let nr, let c):
                s += "  if ($syscall == \(nr) && " + c.keyText + ")\n    action ERRNO(\(KernelPolicy.deniedErrno));\n"
            }
        }
        return s + "  action ALLOW;\n"
    }
}
