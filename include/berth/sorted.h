/* Binary search in an array sorted by a string key: the one search the
 * registry, the collector, the backends and the Engine client's call
 * counts share. */
#ifndef BERTH_SORTED_H
#define BERTH_SORTED_H

#include <stddef.h>

/* The key of one element; elem points at the element in the array (for an
 * array of pointers, at the pointer). */
typedef const char *(*sorted_key_fn)(const void *elem);

/* The index in `base` (n elements of `size` bytes each, in strcmp order of
 * their keys, no key twice) where `key` is, or where it would go to keep
 * the order; *found says which. */
size_t sorted_slot(const void *base, size_t n, size_t size, const char *key, sorted_key_fn key_of,
                   int *found);

#endif
