/* The runtime's plan.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/plan.c"
