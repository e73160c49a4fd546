/*
 * The one glibc function that Debian's libnettle.a (built for glibc, with _FORTIFY_SOURCE) calls
 * and musl has not: fprintf's checking variant, in the verbose message of nettle's CPU-feature
 * choice (NETTLE_FAT_VERBOSE). Only linked with musl (main.c says why).
 */
#if defined(__linux__) && !defined(__GLIBC__)
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...);
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f, fmt, ap);
    va_end(ap);
    return n;
}
#endif
