/* The runtime's fdpass.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/fdpass.c"
