/* The runtime's plan_cache.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/plan_cache.c"
