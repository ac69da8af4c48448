/* gzip request and response bodies (see berth/gzip.h). */
#include "berth/gzip.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#define GZIP_WINDOW (15 + 16) /* zlib: a gzip header, not zlib's own */
#define GZIP_CHUNK 16384

static int qvalue_is_zero(const char *q, size_t len);
static int gzip_coding_accepted(const char *item, size_t len);

int gzip_inflate(const void *data, size_t len, struct buf *out, struct berth_err *err)
{
    z_stream zs = {0};
    unsigned char chunk[GZIP_CHUNK];
    int zr, rc = -1;

    if (inflateInit2(&zs, GZIP_WINDOW) != Z_OK)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "inflate: out of memory");
    zs.next_in = (unsigned char *)data;
    zs.avail_in = (uInt)len;
    if ((size_t)zs.avail_in != len) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "compressed body too large");
        goto out;
    }
    do {
        zs.next_out = chunk;
        zs.avail_out = sizeof(chunk);
        zr = inflate(&zs, Z_NO_FLUSH);
        if (zr != Z_OK && zr != Z_STREAM_END) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid gzip body: %s",
                          zs.msg ? zs.msg : "truncated stream");
            goto out;
        }
        if (buf_append(out, chunk, sizeof(chunk) - zs.avail_out, err) < 0)
            goto out;
        if (zr != Z_STREAM_END && zs.avail_in == 0 && zs.avail_out != 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid gzip body: truncated stream");
            goto out;
        }
    } while (zr != Z_STREAM_END);
    if (zs.avail_in != 0) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "invalid gzip body: trailing data");
        goto out;
    }
    rc = 0;
out:
    inflateEnd(&zs);
    return rc;
}

int gzip_deflate(const void *data, size_t len, struct buf *out, struct berth_err *err)
{
    z_stream zs = {0};
    unsigned char chunk[GZIP_CHUNK];
    int zr, rc = -1;

    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, GZIP_WINDOW, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "deflate: out of memory");
    zs.next_in = (unsigned char *)data;
    zs.avail_in = (uInt)len;
    do {
        zs.next_out = chunk;
        zs.avail_out = sizeof(chunk);
        zr = deflate(&zs, Z_FINISH);
        if (zr == Z_STREAM_ERROR) {
            berth_err_set(err, BERTH_INTERNAL, "deflate failed");
            goto out;
        }
        if (buf_append(out, chunk, sizeof(chunk) - zs.avail_out, err) < 0)
            goto out;
    } while (zr != Z_STREAM_END);
    rc = 0;
out:
    deflateEnd(&zs);
    return rc;
}

/* Whether a qvalue ("0", "0.000", "0.5", "1") is zero; an unreadable one
 * counts as zero, so we never compress for a client we did not understand. */
static int qvalue_is_zero(const char *q, size_t len)
{
    size_t i = 0;
    int nonzero = 0;

    if (len == 0 || !isdigit((unsigned char)q[0]))
        return 1;
    for (; i < len && isdigit((unsigned char)q[i]); i++)
        nonzero |= q[i] != '0';
    if (i < len && q[i] == '.')
        for (i++; i < len && isdigit((unsigned char)q[i]); i++)
            nonzero |= q[i] != '0';
    while (i < len && (q[i] == ' ' || q[i] == '\t'))
        i++;
    return i < len || !nonzero;
}

/* One Accept-Encoding list item ("gzip", " gzip ; q=0.5"): gzip with a
 * q-value other than zero (RFC 9110 12.5.3). */
static int gzip_coding_accepted(const char *item, size_t len)
{
    size_t i = 0, n;

    while (i < len && (item[i] == ' ' || item[i] == '\t'))
        i++;
    n = strcspn(item + i, ";, \t");
    if (n != 4 || strncasecmp(item + i, "gzip", 4) != 0)
        return 0;
    i += n;
    while (i < len) {
        size_t end;
        while (i < len && (item[i] == ' ' || item[i] == '\t' || item[i] == ';'))
            i++;
        end = i;
        while (end < len && item[end] != ';')
            end++;
        if (end - i >= 2 && (item[i] == 'q' || item[i] == 'Q') && item[i + 1] == '=')
            return !qvalue_is_zero(item + i + 2, end - i - 2);
        i = end;
    }
    return 1;
}

int gzip_accepted(const char *accept_encoding)
{
    const char *ae = accept_encoding;

    while (ae != NULL && *ae != '\0') {
        size_t n = strcspn(ae, ",");
        if (gzip_coding_accepted(ae, n))
            return 1;
        ae += n;
        if (*ae == ',')
            ae++;
    }
    return 0;
}
