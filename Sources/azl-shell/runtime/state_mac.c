/* The runtime's state_mac.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/state_mac.c"
