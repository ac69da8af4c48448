/* base64 in both alphabets (see berth/base64.h). */
#include "berth/base64.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c, bool url);
static bool b64_is_url(const char *text, size_t len);
static void decode_run(const char *text, size_t len, bool url, unsigned char *out);

static int b64_value(unsigned char c, bool url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* The URL-safe alphabet when the text holds one of its two characters. */
static bool b64_is_url(const char *text, size_t len)
{
    return memchr(text, '-', len) != NULL || memchr(text, '_', len) != NULL;
}

int base64_encode(const void *data, size_t len, struct buf *out, struct berth_err *err)
{
    const unsigned char *p = data;
    char chunk[64];
    size_t n = 0;

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        chunk[n++] = b64_chars[(v >> 18) & 63];
        chunk[n++] = b64_chars[(v >> 12) & 63];
        chunk[n++] = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
        chunk[n++] = i + 2 < len ? b64_chars[v & 63] : '=';
        if (n == sizeof(chunk)) {
            if (buf_append(out, chunk, n, err) < 0)
                return -1;
            n = 0;
        }
    }
    return buf_append(out, chunk, n, err);
}

int base64_check(const char *text, size_t len, size_t *decoded_len)
{
    size_t pad = 0, body;
    bool url = b64_is_url(text, len);

    while (pad < len && text[len - 1 - pad] == '=')
        pad++;
    body = len - pad;
    if (pad > 2 || (pad > 0 && len % 4 != 0) || body % 4 == 1)
        return -1;
    for (size_t i = 0; i < body; i++)
        if (b64_value((unsigned char)text[i], url) < 0)
            return -1;
    *decoded_len = body / 4 * 3 + (body % 4 == 0 ? 0 : body % 4 - 1);
    return 0;
}

void base64_decode_into(const char *text, size_t len, unsigned char *out)
{
    decode_run(text, len, b64_is_url(text, len), out);
}

/* Decode `len` characters of one alphabet (trailing '=' ignored). */
static void decode_run(const char *text, size_t len, bool url, unsigned char *out)
{
    size_t body = len, o = 0;
    uint32_t acc = 0;

    while (body > 0 && text[body - 1] == '=')
        body--;
    for (size_t i = 0; i < body; i++) {
        acc = (acc << 6) | (uint32_t)b64_value((unsigned char)text[i], url);
        if (i % 4 == 3) {
            out[o++] = (unsigned char)(acc >> 16);
            out[o++] = (unsigned char)(acc >> 8);
            out[o++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (body % 4 == 2) {
        out[o] = (unsigned char)(acc >> 4);
    } else if (body % 4 == 3) {
        out[o] = (unsigned char)(acc >> 10);
        out[o + 1] = (unsigned char)(acc >> 2);
    }
}

int base64_decode(const char *text, size_t len, struct buf *out, struct berth_err *err)
{
    bool url = b64_is_url(text, len);
    unsigned char chunk[48];
    size_t n = 0;

    if (base64_check(text, len, &n) < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid base64");
    /* 64 characters make 48 bytes; the last run holds any padding. */
    for (size_t i = 0; i < len; i += 64) {
        size_t run = len - i < 64 ? len - i : 64;
        size_t bytes = n - (i / 4 * 3) < sizeof(chunk) ? n - (i / 4 * 3) : sizeof(chunk);
        decode_run(text + i, run, url, chunk);
        if (buf_append(out, chunk, bytes, err) < 0)
            return -1;
    }
    if (out->data == NULL)
        return buf_append(out, "", 0, err);
    return 0;
}
