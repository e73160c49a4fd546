/* The runtime's mounts.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/mounts.c"
