/* Binary search by string key (see berth/sorted.h). */
#include "berth/sorted.h"

#include <string.h>

size_t sorted_slot(const void *base, size_t n, size_t size, const char *key, sorted_key_fn key_of,
                   int *found)
{
    const char *elems = base;
    size_t lo = 0, hi = n;

    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(key_of(elems + mid * size), key);

        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}
