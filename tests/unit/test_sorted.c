/* Unit tests for src/util/sorted.c: found and not found, where a key goes
 * (before the first, between, after the last), an empty array, arrays of
 * pointers and of structs, and inserting at the slot keeps the order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "berth/sorted.h"
#include "testlib.h"

struct named {
    char name[16];
    int v;
};

static const char *ptr_key(const void *elem)
{
    return *(const char *const *)elem;
}

static const char *named_key(const void *elem)
{
    return ((const struct named *)elem)->name;
}

static void test_pointers(void)
{
    static const char *const keys[] = {"b", "d", "f", "h"};
    static const struct {
        const char *key;
        size_t at;
        int found;
    } rows[] = {
        {"a", 0, 0}, {"b", 0, 1}, {"c", 1, 0}, {"d", 1, 1}, {"e", 2, 0},
        {"f", 2, 1}, {"g", 3, 0}, {"h", 3, 1}, {"i", 4, 0}, {"", 0, 0},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int found = -1;
        size_t at = sorted_slot(keys, 4, sizeof(keys[0]), rows[i].key, ptr_key, &found);

        CHECK_MSG(at == rows[i].at && found == rows[i].found, "'%s': at %zu found %d", rows[i].key,
                  at, found);
    }
    {
        int found = -1;
        CHECK(sorted_slot(NULL, 0, sizeof(keys[0]), "x", ptr_key, &found) == 0 && found == 0);
    }
}

/* Keys inserted in a scrambled order at their slot end up sorted, and each
 * is found where it went. */
static void test_insert_keeps_order(void)
{
    enum { N = 200 };
    static struct named arr[N];
    size_t n = 0;

    for (int i = 0; i < N; i++) {
        struct named e = {.v = i};
        int found;
        size_t at;

        snprintf(e.name, sizeof(e.name), "k%05d", (i * 37) % N);
        at = sorted_slot(arr, n, sizeof(arr[0]), e.name, named_key, &found);
        CHECK_MSG(!found, "%s found before it went in", e.name);
        memmove(&arr[at + 1], &arr[at], (n - at) * sizeof(arr[0]));
        arr[at] = e;
        n++;
    }
    for (size_t i = 1; i < n; i++)
        CHECK_MSG(strcmp(arr[i - 1].name, arr[i].name) < 0, "out of order at %zu", i);
    for (int i = 0; i < N; i++) {
        char key[16];
        int found;
        size_t at;

        snprintf(key, sizeof(key), "k%05d", i);
        at = sorted_slot(arr, n, sizeof(arr[0]), key, named_key, &found);
        /* The element, not only its key: the one inserted as i. */
        CHECK_MSG(found && at == (size_t)i && (arr[at].v * 37) % N == i, "%s: at %zu", key, at);
    }
}

int main(void)
{
    test_pointers();
    test_insert_keeps_order();
    return test_summary("test_sorted");
}
