/* base64 in both alphabets (see berth/base64.h). */
#include "berth/base64.h"

static const char b64_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(unsigned char c);

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

int base64_encode(const void *data, size_t len, struct buf *out, struct berth_err *err)
{
    const unsigned char *p = data;
    char quad[4];

    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        quad[0] = b64_chars[(v >> 18) & 63];
        quad[1] = b64_chars[(v >> 12) & 63];
        quad[2] = i + 1 < len ? b64_chars[(v >> 6) & 63] : '=';
        quad[3] = i + 2 < len ? b64_chars[v & 63] : '=';
        if (buf_append(out, quad, 4, err) < 0)
            return -1;
    }
    if (out->data == NULL)
        return buf_append(out, "", 0, err);
    return 0;
}

int base64_decode(const char *text, size_t len, struct buf *out, struct berth_err *err)
{
    unsigned v = 0;
    int bits = 0;
    size_t i, pad = 0, n = len;

    while (n > 0 && text[n - 1] == '=') {
        n--;
        pad++;
    }
    if (pad > 2 || (pad > 0 && len % 4 != 0) || n % 4 == 1)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid base64");
    for (i = 0; i < n; i++) {
        int d = b64_value((unsigned char)text[i]);
        if (d < 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid base64");
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            unsigned char byte = (unsigned char)(v >> (bits - 8));
            bits -= 8;
            if (buf_append(out, &byte, 1, err) < 0)
                return -1;
        }
    }
    if (out->data == NULL)
        return buf_append(out, "", 0, err);
    return 0;
}
