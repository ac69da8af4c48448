/* A request without a server, for the Connect layer's fuzzer (see
 * http_fake.h): the berth/http_server.h functions the layer reads, over
 * lines parsed from the input; the stream functions it links against are
 * never reached (no stream is ever opened). */
#include "http_fake.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "berth/clock.h"

#define FAKE_MAX_FIELDS 64

struct http_request {
    char *method;
    char *path; /* decoded; a decoded NUL ends it, as it would libmicrohttpd's */
    size_t n_headers;
    char *hname[FAKE_MAX_FIELDS], *hvalue[FAKE_MAX_FIELDS];
    size_t n_query;
    char *qkey[FAKE_MAX_FIELDS], *qval[FAKE_MAX_FIELDS];
    size_t qlen[FAKE_MAX_FIELDS];
    char *body;
    size_t body_len;
    int too_large;
    int64_t started_ms;
};

static int hex(char c);
static char *dup_n(const char *s, size_t n);
static size_t decode(char *s, size_t n, int plus);
static void parse_query(struct http_request *req, const char *q, size_t n);

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* %XX (and + when plus) decoded in place; the new length. */
static size_t decode(char *s, size_t n, int plus)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
            s[o++] = (char)(hex(s[i + 1]) * 16 + hex(s[i + 2]));
            i += 2;
        } else if (plus && s[i] == '+') {
            s[o++] = ' ';
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = '\0';
    return o;
}

static void parse_query(struct http_request *req, const char *q, size_t n)
{
    size_t i = 0;

    while (i <= n && req->n_query < FAKE_MAX_FIELDS) {
        size_t end = i, eq;
        char *key, *val;

        while (end < n && q[end] != '&')
            end++;
        for (eq = i; eq < end && q[eq] != '='; eq++)
            ;
        key = dup_n(q + i, eq - i);
        val = eq < end ? dup_n(q + eq + 1, end - eq - 1) : dup_n("", 0);
        if (key == NULL || val == NULL) {
            free(key);
            free(val);
            return;
        }
        decode(key, strlen(key), 1);
        req->qkey[req->n_query] = key;
        req->qlen[req->n_query] = decode(val, eq < end ? end - eq - 1 : 0, 1);
        req->qval[req->n_query++] = val;
        i = end + 1;
    }
}

struct http_request *http_fake_parse(const uint8_t *data, size_t size, size_t max_body)
{
    struct http_request *req = calloc(1, sizeof(*req));
    const char *text = (const char *)data, *end = text + size, *line = text;
    int first = 1;

    if (req == NULL)
        return NULL;
    req->started_ms = berth_now_ms();
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = (size_t)((nl != NULL ? nl : end) - line);
        const char *next = nl != NULL ? nl + 1 : end;

        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (first) {
            const char *sp = memchr(line, ' ', n);
            const char *target = sp != NULL ? sp + 1 : "/";
            size_t tlen = sp != NULL ? n - (size_t)(target - line) : 1;
            const char *qm = memchr(target, '?', tlen);
            size_t plen = qm != NULL ? (size_t)(qm - target) : tlen;

            req->method = dup_n(line, sp != NULL ? (size_t)(sp - line) : n);
            req->path = dup_n(target, plen);
            if (req->method == NULL || req->path == NULL)
                goto fail;
            decode(req->path, plen, 0);
            if (qm != NULL)
                parse_query(req, qm + 1, tlen - plen - 1);
            first = 0;
        } else if (n == 0) {
            line = next;
            break;
        } else if (req->n_headers < FAKE_MAX_FIELDS) {
            const char *colon = memchr(line, ':', n);
            const char *v = colon != NULL ? colon + 1 : line + n;
            size_t k = req->n_headers;

            while (v < line + n && (*v == ' ' || *v == '\t'))
                v++;
            req->hname[k] = dup_n(line, (size_t)((colon != NULL ? colon : line + n) - line));
            req->hvalue[k] = dup_n(v, (size_t)(line + n - v));
            if (req->hname[k] == NULL || req->hvalue[k] == NULL) {
                free(req->hname[k]);
                free(req->hvalue[k]);
                goto fail;
            }
            req->n_headers++;
        }
        line = next;
    }
    if (first) {
        req->method = dup_n("POST", 4);
        req->path = dup_n("/", 1);
        if (req->method == NULL || req->path == NULL)
            goto fail;
    }
    req->body_len = (size_t)(end - line);
    if (req->body_len > max_body) {
        req->too_large = 1;
        req->body_len = 0;
    }
    req->body = dup_n(line, req->body_len);
    if (req->body == NULL)
        goto fail;
    return req;
fail:
    http_fake_free(req);
    return NULL;
}

void http_fake_free(struct http_request *req)
{
    if (req == NULL)
        return;
    for (size_t i = 0; i < req->n_headers; i++) {
        free(req->hname[i]);
        free(req->hvalue[i]);
    }
    for (size_t i = 0; i < req->n_query; i++) {
        free(req->qkey[i]);
        free(req->qval[i]);
    }
    free(req->method);
    free(req->path);
    free(req->body);
    free(req);
}

const char *http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->hname[i], name) == 0)
            return req->hvalue[i];
    return NULL;
}

int http_request_query(const struct http_request *req, const char *key, const char **value,
                       size_t *len)
{
    for (size_t i = 0; i < req->n_query; i++)
        if (strcmp(req->qkey[i], key) == 0) {
            *value = req->qval[i];
            *len = req->qlen[i];
            return 0;
        }
    return -1;
}

const char *http_request_body(const struct http_request *req, size_t *len, int *too_large)
{
    *len = req->body_len;
    *too_large = req->too_large;
    return req->body;
}

const struct berth_err *http_request_malformed(const struct http_request *req)
{
    (void)req;
    return NULL;
}

const char *http_request_caller(const struct http_request *req, const struct berth_err **why)
{
    (void)req;
    if (why != NULL)
        *why = NULL;
    return "fuzz";
}

int64_t http_request_started_ms(const struct http_request *req)
{
    return req->started_ms;
}

void http_response_header(struct http_response *resp, const char *name, const char *value)
{
    if (resp->n_headers >= HTTP_MAX_RESPONSE_HEADERS)
        return;
    resp->header_name[resp->n_headers] = name;
    resp->header_value[resp->n_headers] = value;
    resp->n_headers++;
}

struct http_stream *http_response_stream(const struct http_request *req, struct http_response *resp,
                                         size_t max_queued)
{
    (void)req;
    (void)resp;
    (void)max_queued;
    return NULL;
}

/* rpc_stream.c links against these; with no stream ever opened they are
 * never called. */
int http_stream_write(struct http_stream *st, const void *data, size_t len, int64_t deadline)
{
    (void)st;
    (void)data;
    (void)len;
    (void)deadline;
    abort();
}

int http_stream_closed(struct http_stream *st)
{
    (void)st;
    abort();
}

int http_stream_stopping(struct http_stream *st)
{
    (void)st;
    abort();
}

void http_stream_on_stop(struct http_stream *st, void (*fn)(void *arg), void *arg)
{
    (void)st;
    (void)fn;
    (void)arg;
    abort();
}

void http_stream_end(struct http_stream *st)
{
    (void)st;
    abort();
}

void http_stream_end_with(struct http_stream *st, const void *data, size_t len)
{
    (void)st;
    (void)data;
    (void)len;
    abort();
}
