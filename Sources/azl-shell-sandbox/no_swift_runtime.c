/*
 * SwiftPM links every executable with swiftc, which adds swiftrt.o: a constructor that
 * registers the binary's Swift metadata with the Swift runtime by calling
 * swift_addNewDSOImage. This helper has no Swift code and no metadata; defining the call here
 * as a no-op keeps the whole Swift runtime (and the C++ runtime it needs) out of the link, so
 * the helper is a ~1 MB static C program whose start costs what a C no-op's does.
 */
void swift_addNewDSOImage(const void *header);
void swift_addNewDSOImage(const void *header) { (void)header; }
