/* The runtime's guards.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/guards.c"
