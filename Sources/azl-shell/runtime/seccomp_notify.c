/* The runtime's seccomp_notify.c, compiled into the front end (main.c says why). */
#include "../../SandboxRuntime/seccomp_notify.c"
