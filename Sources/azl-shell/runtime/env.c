/* The runtime's env.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/env.c"
