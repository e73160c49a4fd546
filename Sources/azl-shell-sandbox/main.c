/* azl-shell-sandbox: the supervisor as a program of its own, for azl-shell-cli, which is
 * multithreaded and so cannot carry out a plan itself (Sources/SandboxRuntime). */
#include "azl_sandbox.h"

int main(int argc, char **argv) { return azl_sandbox_main(argc, argv); }
