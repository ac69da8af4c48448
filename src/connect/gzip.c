/* gzip request and response bodies (see berth/gzip.h). */
#include "berth/gzip.h"

#include <zlib.h>

#define GZIP_WINDOW (15 + 16) /* zlib: a gzip header, not zlib's own */
#define GZIP_CHUNK 16384

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
