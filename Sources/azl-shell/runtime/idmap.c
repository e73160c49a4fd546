/* The runtime's idmap.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/idmap.c"
