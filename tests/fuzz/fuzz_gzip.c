/* libFuzzer harness for gzip (src/connect/gzip.c). The first byte picks:
 * inflate the rest under a cap (a corrupt stream is invalid_argument, past
 * the cap resource_exhausted, and what inflates deflates and inflates back
 * to itself); deflate the rest and inflate it back; or read the rest as an
 * Accept-Encoding value. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/buf.h"
#include "berth/err.h"
#include "berth/gzip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INFLATE_CAP (1 << 20)

static void round_trip(const void *plain, size_t len);

/* deflate then inflate: the same bytes. */
static void round_trip(const void *plain, size_t len)
{
    struct buf packed, back;
    struct berth_err err;

    buf_init(&packed, (size_t)4 << 20);
    buf_init(&back, len + 1);
    berth_err_clear(&err);
    if (gzip_deflate(plain, len, &packed, &err) < 0)
        abort();
    if (gzip_inflate(packed.data, packed.len, &back, &err) < 0)
        abort();
    if (back.len != len || (len > 0 && memcmp(back.data, plain, len) != 0))
        abort();
    buf_release(&packed);
    buf_release(&back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf out;
    struct berth_err err;
    char *text;

    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        buf_init(&out, INFLATE_CAP);
        berth_err_clear(&err);
        if (gzip_inflate(data + 1, size - 1, &out, &err) == 0)
            round_trip(out.data, out.len);
        else if (err.code != BERTH_INVALID_ARGUMENT && err.code != BERTH_RESOURCE_EXHAUSTED)
            abort();
        buf_release(&out);
        break;
    case 1:
        round_trip(data + 1, size - 1);
        break;
    default:
        text = malloc(size);
        if (text == NULL)
            return 0;
        memcpy(text, data + 1, size - 1);
        text[size - 1] = '\0';
        (void)gzip_accepted(text);
        free(text);
        break;
    }
    return 0;
}
