/*
 * SwiftPM links every executable with swiftc, which adds swiftrt.o: a constructor that registers
 * the binary's Swift metadata with Swift's runtime (swift_addNewDSOImage), and a reference to
 * the runtime's backtracer. This program has no Swift code: both defined here as no-ops keep
 * Swift's runtime, and the C++ and glibc it needs, out of the link.
 */
void swift_addNewDSOImage(const void *header);
void swift_addNewDSOImage(const void *header) { (void)header; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
