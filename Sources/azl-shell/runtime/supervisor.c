/* The runtime's supervisor.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/supervisor.c"
