/* The runtime's util.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/util.c"
