/* The runtime's keeper.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/keeper.c"
