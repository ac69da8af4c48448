/* libFuzzer harness for base64 (src/util/base64.c). The input as text:
 * base64_check and base64_decode agree on it; what decodes has the size
 * check gave, and its encoding decodes to the same bytes. The input as
 * bytes: it encodes to text that check accepts and decodes back to it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/base64.h"
#include "berth/buf.h"
#include "berth/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP ((size_t)1 << 22)

static void decodes_to(const char *text, size_t len, const void *want, size_t want_len);

/* text is valid and decodes, both ways, to exactly want. */
static void decodes_to(const char *text, size_t len, const void *want, size_t want_len)
{
    struct buf out;
    struct berth_err err;
    size_t n = 0;
    unsigned char *into;

    if (base64_check(text, len, &n) < 0 || n != want_len)
        abort();
    into = malloc(n + 1);
    if (into == NULL)
        abort();
    base64_decode_into(text, len, into);
    if (n > 0 && memcmp(into, want, n) != 0)
        abort();
    free(into);
    buf_init(&out, CAP);
    berth_err_clear(&err);
    if (base64_decode(text, len, &out, &err) < 0 || out.len != want_len ||
        (want_len > 0 && memcmp(out.data, want, want_len) != 0))
        abort();
    buf_release(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    struct buf decoded, encoded;
    struct berth_err err;
    size_t n = 0;
    int ok;

    /* As text. */
    buf_init(&decoded, CAP);
    berth_err_clear(&err);
    ok = base64_check(text, size, &n) == 0;
    if (ok != (base64_decode(text, size, &decoded, &err) == 0))
        abort();
    if (ok) {
        if (decoded.len != n)
            abort();
        buf_init(&encoded, CAP);
        if (base64_encode(decoded.data, decoded.len, &encoded, NULL) < 0)
            abort();
        decodes_to(encoded.data, encoded.len, decoded.data, decoded.len);
        buf_release(&encoded);
    } else if (err.code != BERTH_INVALID_ARGUMENT) {
        abort();
    }
    buf_release(&decoded);

    /* As bytes. */
    buf_init(&encoded, CAP);
    if (base64_encode(data, size, &encoded, NULL) < 0)
        abort();
    decodes_to(encoded.data, encoded.len, data, size);
    buf_release(&encoded);
    return 0;
}
