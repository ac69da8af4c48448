/* The command line's Connect transport: unary JSON calls and server streams
 * over libcurl, to http(s)://HOST:PORT or a unix socket, with the project's
 * own codec on both sides. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <string.h>

#include "berth/json_codec.h"
#include "cli_internal.h"

#define CLI_MAX_ANSWER_BYTES ((size_t)64 << 20)
#define CLI_ENVELOPE_HEAD 5
#define CLI_FLAG_COMPRESSED 0x01
#define CLI_FLAG_END 0x02

/* What a stream's write callback needs between chunks. */
struct cli_stream_state {
    struct buf pending; /* bytes of an envelope not complete yet */
    const ProtobufCMessageDescriptor *out_desc;
    cli_stream_fn fn;
    void *arg;
    int stopped;          /* fn asked to stop */
    int ended;            /* the end-of-stream envelope arrived */
    struct berth_err err; /* the stream's own error, or a decode failure */
};

static CURL *cli_easy(const struct cli_opts *o, const char *procedure, struct curl_slist **headers,
                      const char *content_type, struct berth_err *err);
static size_t cli_collect(char *data, size_t size, size_t n, void *arg);
static size_t cli_stream_write(char *data, size_t size, size_t n, void *arg);
static int cli_stream_feed(struct cli_stream_state *st);
static void cli_error_from_json(const char *body, size_t len, long status, struct berth_err *err);
static enum berth_code cli_code_of_status(long status);

/* A curl handle for one call: URL, socket, TLS files, token, headers. The
 * caller frees the handle and *headers. */
static CURL *cli_easy(const struct cli_opts *o, const char *procedure, struct curl_slist **headers,
                      const char *content_type, struct berth_err *err)
{
    CURL *h = curl_easy_init();
    struct buf url, auth;
    struct curl_slist *l = NULL, *next;
    const char *base = o->addr;
    int ok;

    buf_init(&url, 4096);
    buf_init(&auth, 8192);
    if (h == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (strncmp(base, "unix:", 5) == 0) {
        if (base[5] == '\0') {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "--addr 'unix:' needs a socket path");
            goto fail;
        }
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, base + 5);
        base = "http://localhost";
    } else if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0) {
        char quoted[80];
        berth_err_quote(quoted, sizeof(quoted), base, 64);
        berth_err_set(err, BERTH_INVALID_ARGUMENT,
                      "--addr '%s': expected http://HOST:PORT, https://HOST:PORT or unix:PATH",
                      quoted);
        goto fail;
    }
    ok = buf_appends(&url, base, NULL) == 0;
    while (ok && url.len > 0 && url.data[url.len - 1] == '/')
        url.data[--url.len] = '\0';
    ok = ok && buf_appends(&url, procedure, NULL) == 0;
    ok = ok && buf_printf(&auth, NULL, "Content-Type: %s", content_type) == 0;
    next = ok ? curl_slist_append(l, auth.data) : NULL;
    ok = next != NULL;
    l = ok ? next : l;
    next = ok ? curl_slist_append(l, "Connect-Protocol-Version: 1") : NULL;
    ok = next != NULL;
    l = ok ? next : l;
    if (ok && o->token != NULL && o->token[0] != '\0') {
        buf_reset(&auth);
        ok = buf_printf(&auth, NULL, "Authorization: Bearer %s", o->token) == 0;
        next = ok ? curl_slist_append(l, auth.data) : NULL;
        ok = next != NULL;
        l = ok ? next : l;
    }
    if (!ok) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    if (o->timeout_ms > 0)
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    if (o->cacert != NULL)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->cacert);
    if (o->cert != NULL)
        curl_easy_setopt(h, CURLOPT_SSLCERT, o->cert);
    if (o->key != NULL)
        curl_easy_setopt(h, CURLOPT_SSLKEY, o->key);
    buf_release(&url);
    /* The token's copy is wiped: curl keeps its own in the header list. */
    if (auth.data != NULL)
        memset(auth.data, 0, auth.len);
    buf_release(&auth);
    *headers = l;
    return h;
fail:
    buf_release(&url);
    buf_release(&auth);
    curl_slist_free_all(l);
    if (h != NULL)
        curl_easy_cleanup(h);
    return NULL;
}

static size_t cli_collect(char *data, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;

    if (buf_append(b, data, size * n, NULL) < 0)
        return 0;
    return size * n;
}

/* The Connect code an HTTP status means when the body says nothing. */
static enum berth_code cli_code_of_status(long status)
{
    switch (status) {
    case 400:
        return BERTH_INVALID_ARGUMENT;
    case 401:
        return BERTH_UNAUTHENTICATED;
    case 403:
        return BERTH_PERMISSION_DENIED;
    case 404:
        return BERTH_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return BERTH_UNAVAILABLE;
    default:
        return BERTH_UNKNOWN;
    }
}

/* A Connect error body ({"code","message"}) into err; a body that is not one
 * gives the code of the HTTP status. */
static void cli_error_from_json(const char *body, size_t len, long status, struct berth_err *err)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "code");
    const cJSON *msg = cJSON_GetObjectItemCaseSensitive(root, "message");

    if (cJSON_IsString(code))
        berth_err_set(err, berth_code_from_name(code->valuestring), "%s",
                      cJSON_IsString(msg) ? msg->valuestring : "");
    else
        berth_err_set(err, cli_code_of_status(status), "HTTP %ld from berthd", status);
    cJSON_Delete(root);
}

int cli_call(const struct cli_opts *o, const char *procedure, const ProtobufCMessage *in,
             const ProtobufCMessageDescriptor *out_desc, struct arena *a, ProtobufCMessage **out,
             struct buf *raw, struct berth_err *err)
{
    struct curl_slist *headers = NULL;
    struct buf body, answer;
    CURL *h = NULL;
    CURLcode cc;
    long status = 0;
    int rc = -1;

    buf_init(&body, CLI_MAX_ANSWER_BYTES);
    buf_init(&answer, CLI_MAX_ANSWER_BYTES);
    if (json_codec_encode(in, &body, err) < 0)
        goto out;
    h = cli_easy(o, procedure, &headers, "application/json", err);
    if (h == NULL)
        goto out;
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data ? body.data : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
    cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        berth_err_set(err,
                      cc == CURLE_OPERATION_TIMEDOUT ? BERTH_DEADLINE_EXCEEDED : BERTH_UNAVAILABLE,
                      "cannot reach berthd at %s: %s", o->addr, curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        cli_error_from_json(answer.data ? answer.data : "", answer.len, status, err);
        goto out;
    }
    if (json_codec_decode(out_desc, answer.data ? answer.data : "{}", answer.data ? answer.len : 2,
                          arena_allocator(a), out, err) < 0)
        goto out;
    if (raw != NULL &&
        buf_append(raw, answer.data ? answer.data : "{}", answer.data ? answer.len : 2, err) < 0)
        goto out;
    rc = 0;
out:
    if (h != NULL)
        curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    buf_release(&body);
    buf_release(&answer);
    return rc;
}

/* Take every whole envelope out of st->pending. -1 stops the transfer. */
static int cli_stream_feed(struct cli_stream_state *st)
{
    size_t at = 0;

    while (!st->stopped && !st->ended && st->pending.len - at >= CLI_ENVELOPE_HEAD) {
        const unsigned char *p = (const unsigned char *)st->pending.data + at;
        size_t len = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        const char *payload = (const char *)p + CLI_ENVELOPE_HEAD;

        if (len > CLI_MAX_ANSWER_BYTES) {
            berth_err_set(&st->err, BERTH_RESOURCE_EXHAUSTED, "stream message of %zu bytes", len);
            return -1;
        }
        if (st->pending.len - at - CLI_ENVELOPE_HEAD < len)
            break;
        if (p[0] & CLI_FLAG_END) {
            cJSON *root = cJSON_ParseWithLength(payload, len);
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");
            if (cJSON_IsObject(e)) {
                char *text = cJSON_PrintUnformatted(e);
                cli_error_from_json(text ? text : "", text ? strlen(text) : 0, 200, &st->err);
                cJSON_free(text);
            }
            cJSON_Delete(root);
            st->ended = 1;
        } else if (p[0] & CLI_FLAG_COMPRESSED) {
            berth_err_set(&st->err, BERTH_INTERNAL, "compressed stream message was not asked for");
            return -1;
        } else {
            struct arena *a = arena_new();
            ProtobufCMessage *msg = NULL;
            int rc = -1;

            if (a == NULL) {
                berth_err_set(&st->err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                return -1;
            }
            if (json_codec_decode(st->out_desc, payload, len, arena_allocator(a), &msg, &st->err) ==
                0)
                rc = st->fn(st->arg, msg, payload, len);
            arena_free(a);
            if (st->err.code != BERTH_OK)
                return -1;
            if (rc != 0)
                st->stopped = 1;
        }
        at += CLI_ENVELOPE_HEAD + len;
    }
    if (at > 0) {
        memmove(st->pending.data, st->pending.data + at, st->pending.len - at);
        st->pending.len -= at;
    }
    return st->stopped || st->ended ? -1 : 0;
}

static size_t cli_stream_write(char *data, size_t size, size_t n, void *arg)
{
    struct cli_stream_state *st = arg;

    if (buf_append(&st->pending, data, size * n, &st->err) < 0)
        return 0;
    if (cli_stream_feed(st) < 0)
        return 0;
    return size * n;
}

int cli_stream(const struct cli_opts *o, const char *procedure, const ProtobufCMessage *in,
               const ProtobufCMessageDescriptor *out_desc, cli_stream_fn fn, void *arg,
               struct berth_err *err)
{
    struct cli_stream_state st = {.out_desc = out_desc, .fn = fn, .arg = arg};
    struct curl_slist *headers = NULL;
    struct buf msg, body;
    unsigned char head[CLI_ENVELOPE_HEAD];
    CURL *h = NULL;
    CURLcode cc;
    long status = 0;
    int rc = -1;

    berth_err_clear(&st.err);
    buf_init(&st.pending, CLI_MAX_ANSWER_BYTES + CLI_ENVELOPE_HEAD);
    buf_init(&msg, CLI_MAX_ANSWER_BYTES);
    buf_init(&body, CLI_MAX_ANSWER_BYTES + CLI_ENVELOPE_HEAD);
    if (json_codec_encode(in, &msg, err) < 0)
        goto out;
    head[0] = 0;
    head[1] = (unsigned char)(msg.len >> 24);
    head[2] = (unsigned char)(msg.len >> 16);
    head[3] = (unsigned char)(msg.len >> 8);
    head[4] = (unsigned char)msg.len;
    if (buf_append(&body, head, sizeof(head), err) < 0 ||
        buf_append(&body, msg.data ? msg.data : "", msg.len, err) < 0)
        goto out;
    h = cli_easy(o, procedure, &headers, "application/connect+json", err);
    if (h == NULL)
        goto out;
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.data);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)body.len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, cli_stream_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &st);
    cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 0 && status != 200) {
        cli_error_from_json(st.pending.data ? st.pending.data : "", st.pending.len, status, err);
        goto out;
    }
    if (st.err.code != BERTH_OK) {
        berth_err_set(err, st.err.code, "%s", st.err.msg);
        goto out;
    }
    if (cc != CURLE_OK && !st.stopped && !st.ended) {
        berth_err_set(err,
                      cc == CURLE_OPERATION_TIMEDOUT ? BERTH_DEADLINE_EXCEEDED : BERTH_UNAVAILABLE,
                      "cannot reach berthd at %s: %s", o->addr, curl_easy_strerror(cc));
        goto out;
    }
    if (!st.stopped && !st.ended) {
        berth_err_set(err, BERTH_UNAVAILABLE, "the stream ended without its end message");
        goto out;
    }
    rc = 0;
out:
    if (h != NULL)
        curl_easy_cleanup(h);
    curl_slist_free_all(headers);
    buf_release(&st.pending);
    buf_release(&msg);
    buf_release(&body);
    return rc;
}
