/* The Connect error codes (one table: wire name and HTTP status) and the
 * first-writer-wins error setter every layer uses. */
#include "berth/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    int http_status;
} code_table[BERTH_CODE_COUNT] = {
    [BERTH_OK] = {"ok", 200},
    [BERTH_CANCELED] = {"canceled", 499},
    [BERTH_UNKNOWN] = {"unknown", 500},
    [BERTH_INVALID_ARGUMENT] = {"invalid_argument", 400},
    [BERTH_DEADLINE_EXCEEDED] = {"deadline_exceeded", 504},
    [BERTH_NOT_FOUND] = {"not_found", 404},
    [BERTH_ALREADY_EXISTS] = {"already_exists", 409},
    [BERTH_PERMISSION_DENIED] = {"permission_denied", 403},
    [BERTH_RESOURCE_EXHAUSTED] = {"resource_exhausted", 429},
    [BERTH_FAILED_PRECONDITION] = {"failed_precondition", 400},
    [BERTH_ABORTED] = {"aborted", 409},
    [BERTH_OUT_OF_RANGE] = {"out_of_range", 400},
    [BERTH_UNIMPLEMENTED] = {"unimplemented", 501},
    [BERTH_INTERNAL] = {"internal", 500},
    [BERTH_UNAVAILABLE] = {"unavailable", 503},
    [BERTH_DATA_LOSS] = {"data_loss", 500},
    [BERTH_UNAUTHENTICATED] = {"unauthenticated", 401},
};

static void cut_on_char_boundary(char *msg, size_t len);

/* vsnprintf cuts by bytes: drop a UTF-8 sequence the cut left without its
 * last continuation bytes, so a cut never makes valid text invalid. */
static void cut_on_char_boundary(char *msg, size_t len)
{
    size_t cont = 0, need;
    unsigned char lead;

    while (cont < 3 && cont < len && ((unsigned char)msg[len - 1 - cont] & 0xc0) == 0x80)
        cont++;
    if (cont == len)
        return;
    lead = (unsigned char)msg[len - 1 - cont];
    need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (need > cont + 1)
        msg[len - 1 - cont] = '\0';
}

void berth_err_clear(struct berth_err *err)
{
    err->code = BERTH_OK;
    err->msg[0] = '\0';
}

int berth_err_set(struct berth_err *err, enum berth_code code, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (err == NULL || err->code != BERTH_OK)
        return -1;
    err->code = code == BERTH_OK ? BERTH_UNKNOWN : code;
    va_start(ap, fmt);
    n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (n < 0)
        err->msg[0] = '\0';
    else if ((size_t)n >= sizeof(err->msg))
        cut_on_char_boundary(err->msg, sizeof(err->msg) - 1);
    for (char *p = err->msg; *p; p++)
        if (*p == '\r' || *p == '\n')
            *p = ' ';
    return -1;
}

const char *berth_code_name(enum berth_code code)
{
    if ((int)code < 0 || code >= BERTH_CODE_COUNT)
        return "unknown";
    return code_table[code].name;
}

int berth_code_http_status(enum berth_code code)
{
    if ((int)code < 0 || code >= BERTH_CODE_COUNT)
        return 500;
    return code_table[code].http_status;
}

enum berth_code berth_code_from_name(const char *name)
{
    for (int i = 1; i < BERTH_CODE_COUNT; i++)
        if (strcmp(code_table[i].name, name) == 0)
            return (enum berth_code)i;
    return BERTH_UNKNOWN;
}

void berth_err_quote(char *out, size_t outsz, const char *in, size_t max)
{
    size_t n = 0, i;

    if (outsz == 0)
        return;
    for (i = 0; in[i] != '\0' && i < max && n + 1 < outsz; i++) {
        unsigned char c = (unsigned char)in[i];
        out[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (in[i] != '\0' && n + 4 < outsz) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}
