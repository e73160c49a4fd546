#include <archive.h>
#include <archive_entry.h>

// The AE_IF* macros carry casts Swift does not import.
static const unsigned int AZL_AE_IFREG = AE_IFREG;
static const unsigned int AZL_AE_IFLNK = AE_IFLNK;
static const unsigned int AZL_AE_IFSOCK = AE_IFSOCK;
static const unsigned int AZL_AE_IFCHR = AE_IFCHR;
static const unsigned int AZL_AE_IFBLK = AE_IFBLK;
static const unsigned int AZL_AE_IFDIR = AE_IFDIR;
static const unsigned int AZL_AE_IFIFO = AE_IFIFO;
