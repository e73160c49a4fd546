/* The runtime's init.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/init.c"
