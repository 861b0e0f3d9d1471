// Without this file, the bindgen does not work.

#include <sys/types.h>

#define HAVE_NETINET_IN_H 1
