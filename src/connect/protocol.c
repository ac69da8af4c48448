/* The Connect unary rules (CONNECT.md): which requests reach a handler,
 * how their body is read and how the answer is written. One function writes
 * every error response. */
#include "berth/connect.h"

#include "stream_internal.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uuid/uuid.h>
#include <pthread.h>
#include <stdatomic.h>

#include "berth/base64.h"
#include "berth/clock.h"
#include "berth/gzip.h"
#include "berth/json_codec.h"
#include "berth/log.h"
#include "berth/pb_check.h"
#include "berth/utf8.h"

#define ACCEPT_POST "application/json, application/json; charset=utf-8, application/proto"
#define CT_JSON "application/json"
#define CT_PROTO "application/proto"
#define CT_STREAM_JSON "application/connect+json"
#define CT_STREAM_PROTO "application/connect+proto"
#define ACCEPT_POST_STREAM CT_STREAM_JSON ", " CT_STREAM_PROTO
#define REQUEST_ID_MAX CONNECT_REQUEST_ID_MAX
#define MAX_RESPONSE_BYTES ((size_t)256 << 20)

enum codec { CODEC_JSON, CODEC_PROTO };

/* One call's state while it is decoded, handled and encoded. */
struct call_state {
    const struct connect_config *cc;
    const struct http_request *req;
    struct http_response *resp;
    struct arena *arena;
    struct rpc_route *route;
    enum codec codec;
    int gzip_response;
    int64_t deadline;
    const char *body; /* the message bytes, raw or inflated */
    size_t body_len;
    const char *request_id;
};

static int parse_media_type(const char *ct, const char *json, const char *proto, enum codec *codec);
static int parse_content_type(const char *ct, enum codec *codec);
static int connect_stream_content_type(const char *ct, enum codec *codec);
static int parse_timeout(const char *value, int64_t start, int64_t *deadline,
                         struct berth_err *err);
static int check_protocol_version(const struct http_request *req, struct berth_err *err);
static int read_post(struct call_state *cs, struct berth_err *err);
static int read_get(struct call_state *cs, struct berth_err *err);
static int inflate_into(struct call_state *cs, const char *data, size_t len, struct berth_err *err);
static int decode_input(struct call_state *cs, ProtobufCMessage **in, struct berth_err *err);
static int encode_output(struct call_state *cs, const ProtobufCMessage *out, struct berth_err *err);
static int run_call(struct call_state *cs, struct berth_err *err);
static int utf8_repair(const char *s, struct buf *out);
static void respond_status(struct http_response *resp, int status);
static void log_call(const struct rpc_route *route, const char *path, int status,
                     const struct berth_err *err, int64_t start_us, const char *request_id,
                     const char *caller);
static int run_stream(struct call_state *cs, int64_t start_us, struct berth_err *err);
static int read_envelope(struct call_state *cs, struct berth_err *err);

/* `s` as valid UTF-8 in `out`: each byte that does not begin a well-formed
 * sequence becomes U+FFFD, as a JSON string must hold nothing else. */
static int utf8_repair(const char *s, struct buf *out)
{
    size_t len = strlen(s), i = 0;

    while (i < len) {
        size_t n = utf8_seq_len(s + i, len - i);
        if (n == 0) {
            if (buf_append(out, "\xef\xbf\xbd", 3, NULL) < 0)
                return -1;
            i++;
            continue;
        }
        if (buf_append(out, s + i, n, NULL) < 0)
            return -1;
        i += n;
    }
    return buf_append(out, "", 0, NULL);
}

int connect_error_json(const struct berth_err *err, const char *wrap, struct buf *out)
{
    cJSON *root = cJSON_CreateObject(), *obj = root;
    char *text = NULL;
    struct buf msg;
    int rc = -1;

    buf_init(&msg, 3 * BERTH_ERR_MSG_MAX + 1);
    if (root != NULL && wrap != NULL)
        obj = cJSON_AddObjectToObject(root, wrap);
    if (obj && cJSON_AddStringToObject(obj, "code", berth_code_name(err->code)) &&
        (err->msg[0] == '\0' ||
         (utf8_repair(err->msg, &msg) == 0 && cJSON_AddStringToObject(obj, "message", msg.data))))
        text = cJSON_PrintUnformatted(root);
    buf_release(&msg);
    if (text != NULL && buf_appends(out, text, NULL) == 0)
        rc = 0;
    cJSON_free(text);
    cJSON_Delete(root);
    return rc;
}

void connect_write_error(struct http_response *resp, const struct berth_err *err)
{
    buf_reset(&resp->body);
    resp->status = berth_code_http_status(err->code);
    resp->n_headers = 0;
    http_response_header(resp, "Content-Type", CT_JSON);
    http_response_header(resp, "Accept-Encoding", "gzip");
    if (connect_error_json(err, NULL, &resp->body) < 0) {
        buf_reset(&resp->body);
        if (buf_appends(&resp->body, "{\"code\":\"internal\"}", NULL) < 0)
            resp->status = 500;
    }
}

static void respond_status(struct http_response *resp, int status)
{
    buf_reset(&resp->body);
    resp->status = status;
}

/* `json` (with no parameter but charset=utf-8, quoted or not) or `proto`
 * (no parameter), in any case: the codec it names. */
static int parse_media_type(const char *ct, const char *json, const char *proto, enum codec *codec)
{
    size_t n;

    if (ct == NULL)
        return -1;
    n = strcspn(ct, ";");
    while (n > 0 && isspace((unsigned char)ct[n - 1]))
        n--;
    if (n == strlen(json) && strncasecmp(ct, json, n) == 0) {
        const char *param = ct + strcspn(ct, ";");
        if (*param == ';') {
            param++;
            while (isspace((unsigned char)*param))
                param++;
            if (strcasecmp(param, "charset=utf-8") != 0 &&
                strcasecmp(param, "charset=\"utf-8\"") != 0)
                return -1;
        }
        *codec = CODEC_JSON;
        return 0;
    }
    if (n == strlen(proto) && strncasecmp(ct, proto, n) == 0 && ct[n] == '\0') {
        *codec = CODEC_PROTO;
        return 0;
    }
    return -1;
}

/* Unary procedures: application/json or application/proto. */
static int parse_content_type(const char *ct, enum codec *codec)
{
    return parse_media_type(ct, CT_JSON, CT_PROTO, codec);
}

/* Server-streaming procedures: application/connect+json or +proto. */
static int connect_stream_content_type(const char *ct, enum codec *codec)
{
    return parse_media_type(ct, CT_STREAM_JSON, CT_STREAM_PROTO, codec);
}

/* 1 to 10 ASCII digits; sets the call's deadline, counted from `start`
 * (when the request arrived). The length is checked before any digit is
 * added up, so no value can overflow. */
static int parse_timeout(const char *value, int64_t start, int64_t *deadline, struct berth_err *err)
{
    size_t n = strlen(value);
    int64_t ms = 0;
    char quoted[40];

    if (n == 0 || n > 10 || strspn(value, "0123456789") != n) {
        berth_err_quote(quoted, sizeof(quoted), value, 24);
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "invalid Connect-Timeout-Ms '%s': expected 1 to 10 digits", quoted);
    }
    for (size_t i = 0; i < n; i++)
        ms = ms * 10 + (value[i] - '0');
    *deadline = (start > 0 ? start : berth_now_ms()) + ms;
    return 0;
}

static int check_protocol_version(const struct http_request *req, struct berth_err *err)
{
    const char *v = http_request_header(req, "Connect-Protocol-Version");
    char quoted[40];

    if (v == NULL || strcmp(v, "1") == 0)
        return 0;
    berth_err_quote(quoted, sizeof(quoted), v, 24);
    return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                         "connect-protocol-version must be '1': got '%s'", quoted);
}

static int inflate_into(struct call_state *cs, const char *data, size_t len, struct berth_err *err)
{
    struct buf out;
    char *copy;

    buf_init(&out, cs->cc->max_body_bytes);
    if (gzip_inflate(data, len, &out, err) < 0) {
        if (err->code == BERTH_RESOURCE_EXHAUSTED) {
            berth_err_clear(err);
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED,
                          "request body larger than %zu bytes after inflating",
                          cs->cc->max_body_bytes);
        }
        buf_release(&out);
        return -1;
    }
    copy = arena_strndup(cs->arena, out.data ? out.data : "", out.len);
    cs->body_len = out.len;
    buf_release(&out);
    if (copy == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    cs->body = copy;
    return 0;
}

static int read_post(struct call_state *cs, struct berth_err *err)
{
    const char *enc = http_request_header(cs->req, "Content-Encoding");
    const char *data;
    size_t len;
    int too_large;

    if (check_protocol_version(cs->req, err) < 0)
        return -1;
    data = http_request_body(cs->req, &len, &too_large);
    if (too_large)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "request body larger than %zu bytes",
                             cs->cc->max_body_bytes);
    if (enc == NULL || strcasecmp(enc, "identity") == 0) {
        cs->body = data;
        cs->body_len = len;
        return 0;
    }
    if (strcasecmp(enc, "gzip") == 0) {
        if (len == 0) {
            cs->body = data;
            cs->body_len = 0;
            return 0;
        }
        return inflate_into(cs, data, len, err);
    }
    {
        char quoted[40];
        berth_err_quote(quoted, sizeof(quoted), enc, 24);
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "unknown compression \"%s\": supported encodings are gzip", quoted);
    }
}

/* GET ?message=...&encoding=json|proto[&base64=1][&compression=gzip][&connect=v1] */
static int read_get(struct call_state *cs, struct berth_err *err)
{
    const char *v, *msg;
    size_t vlen, mlen;
    struct buf decoded;

    if (http_request_query(cs->req, "connect", &v, &vlen) == 0 && strcmp(v, "v1") != 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "connect query parameter must be 'v1'");
    if (http_request_query(cs->req, "message", &msg, &mlen) < 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "missing 'message' query parameter");
    if (http_request_query(cs->req, "base64", &v, &vlen) == 0 && strcmp(v, "1") == 0) {
        char *copy;
        buf_init(&decoded, cs->cc->max_body_bytes);
        if (base64_decode(msg, mlen, &decoded, err) < 0) {
            buf_release(&decoded);
            berth_err_clear(err);
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "'message' query parameter is not valid base64");
        }
        mlen = decoded.len;
        copy = arena_strndup(cs->arena, decoded.data, decoded.len);
        buf_release(&decoded);
        if (copy == NULL)
            return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        msg = copy;
    }
    if (mlen > cs->cc->max_body_bytes)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "request message larger than %zu bytes",
                             cs->cc->max_body_bytes);
    if (http_request_query(cs->req, "compression", &v, &vlen) == 0 && strcmp(v, "identity") != 0) {
        if (strcmp(v, "gzip") != 0) {
            char quoted[40];
            berth_err_quote(quoted, sizeof(quoted), v, 24);
            return berth_err_set(err, BERTH_UNIMPLEMENTED,
                                 "unknown compression \"%s\": supported encodings are gzip",
                                 quoted);
        }
        if (mlen > 0)
            return inflate_into(cs, msg, mlen, err);
    }
    cs->body = msg;
    cs->body_len = mlen;
    return 0;
}

static int decode_input(struct call_state *cs, ProtobufCMessage **in, struct berth_err *err)
{
    struct codec_limits lim = cs->cc->limits;

    if (lim.max_elements == 0)
        lim.max_elements = CODEC_MAX_ELEMENTS;
    if (lim.max_nodes == 0)
        lim.max_nodes = CODEC_MAX_NODES;
    if (cs->codec == CODEC_JSON)
        return json_codec_decode_limited(cs->route->input, cs->body, cs->body_len, &lim,
                                         arena_allocator(cs->arena), in, err);
    /* Counted before protobuf-c builds the message, which costs many times
     * the bytes of tiny fields. */
    if (pb_check_limits(cs->route->input, (const uint8_t *)cs->body, cs->body_len, &lim, err) < 0)
        return -1;
    *in = protobuf_c_message_unpack(cs->route->input, arena_allocator(cs->arena), cs->body_len,
                                    (const uint8_t *)cs->body);
    if (*in == NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "malformed protobuf body for '%s'",
                             cs->route->input->name);
    /* protobuf-c takes any bytes for a string and cuts it at a NUL, and
     * keeps every entry of a map key given twice. */
    return pb_check_input(cs->route->input, (const uint8_t *)cs->body, cs->body_len, *in,
                          arena_allocator(cs->arena), err);
}

static int encode_output(struct call_state *cs, const ProtobufCMessage *out, struct berth_err *err)
{
    struct buf plain;
    int rc = -1;

    buf_init(&plain, MAX_RESPONSE_BYTES);
    /* Most answers fit: one allocation instead of a few doublings (when
     * it fails, the buffer grows as it is written). */
    if (buf_reserve(&plain, 1024, NULL) < 0)
        buf_reset(&plain);
    if (cs->codec == CODEC_JSON) {
        if (json_codec_encode(out, &plain, err) < 0)
            goto out;
    } else {
        size_t n = protobuf_c_message_get_packed_size(out);
        uint8_t *bytes = arena_alloc(cs->arena, n + 1);
        if (bytes == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        protobuf_c_message_pack(out, bytes);
        if (buf_append(&plain, bytes, n, err) < 0)
            goto out;
    }
    if (cs->gzip_response && plain.len > 0) {
        if (gzip_deflate(plain.data, plain.len, &cs->resp->body, err) < 0)
            goto out;
        http_response_header(cs->resp, "Content-Encoding", "gzip");
    } else if (buf_append(&cs->resp->body, plain.data ? plain.data : "", plain.len, err) < 0) {
        goto out;
    }
    rc = 0;
out:
    buf_release(&plain);
    return rc;
}

static int run_call(struct call_state *cs, struct berth_err *err)
{
    ProtobufCMessage *in = NULL, *out = NULL;
    struct rpc_call call;
    const char *tmo = http_request_header(cs->req, "Connect-Timeout-Ms");

    cs->deadline = BERTH_NO_DEADLINE;
    if (tmo != NULL && parse_timeout(tmo, http_request_started_ms(cs->req), &cs->deadline, err) < 0)
        return -1;
    if (strcmp(http_request_method(cs->req), "GET") == 0) {
        if (read_get(cs, err) < 0)
            return -1;
    } else if (read_post(cs, err) < 0) {
        return -1;
    }
    if (decode_input(cs, &in, err) < 0)
        return -1;
    if (cs->route->handler == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "procedure '%s' is not implemented",
                             cs->route->path);
    if (berth_deadline_left_ms(cs->deadline) == 0)
        return berth_err_set(err, BERTH_DEADLINE_EXCEEDED, "deadline exceeded before the call");
    call.arena = cs->arena;
    call.deadline = cs->deadline;
    call.procedure = cs->route->path;
    call.request_id = cs->request_id;
    /* A handler that finished its work answers it, even past the deadline
     * (as connect-go does): a 504 would tell a caller that waited that a
     * change which did happen may not have. Handlers and the Engine calls
     * under them give up at the deadline by themselves. */
    if (cs->route->handler(cs->route->handler_ctx, &call, in, &out, err) < 0)
        return -1;
    if (out == NULL)
        return berth_err_set(err, BERTH_INTERNAL, "handler returned no message");
    cs->resp->status = 200;
    http_response_header(cs->resp, "Content-Type", cs->codec == CODEC_JSON ? CT_JSON : CT_PROTO);
    http_response_header(cs->resp, "Accept-Encoding", "gzip");
    return encode_output(cs, out, err);
}

/* The request of a stream is one envelope: a flag byte (0, or 0x01 when
 * compressed as Connect-Content-Encoding says), a 4-byte big-endian
 * length, and exactly that many bytes. */
static int read_envelope(struct call_state *cs, struct berth_err *err)
{
    const char *data, *enc = http_request_header(cs->req, "Connect-Content-Encoding");
    size_t len, n;
    int too_large;
    const unsigned char *h;

    data = http_request_body(cs->req, &len, &too_large);
    if (too_large)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "request body larger than %zu bytes",
                             cs->cc->max_body_bytes);
    if (len < 5)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "a stream's request is one envelope: %zu bytes is too short", len);
    h = (const unsigned char *)data;
    n = ((size_t)h[1] << 24) | ((size_t)h[2] << 16) | ((size_t)h[3] << 8) | (size_t)h[4];
    if (n != len - 5)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "the request envelope says %zu bytes and holds %zu", n, len - 5);
    if ((h[0] & ~0x01u) != 0)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                             "request envelope flag 0x%02x: only 0 or 0x01 (compressed)", h[0]);
    if (h[0] & 0x01) {
        if (enc == NULL || strcasecmp(enc, "gzip") != 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "a compressed envelope needs Connect-Content-Encoding: gzip");
        return inflate_into(cs, data + 5, n, err);
    }
    if (enc != NULL && strcasecmp(enc, "identity") != 0 && strcasecmp(enc, "gzip") != 0) {
        char quoted[40];
        berth_err_quote(quoted, sizeof(quoted), enc, 24);
        return berth_err_set(err, BERTH_UNIMPLEMENTED,
                             "unknown compression \"%s\": supported encodings are gzip", quoted);
    }
    cs->body = data + 5;
    cs->body_len = n;
    return 0;
}

/* Decode, then hand the stream to its handler. 0 when the stream is under
 * way (resp is a streamed response); -1 with err when it never began (the
 * caller answers the whole stream as one end envelope). */
static int run_stream(struct call_state *cs, int64_t start_us, struct berth_err *err)
{
    const char *tmo = http_request_header(cs->req, "Connect-Timeout-Ms");
    ProtobufCMessage *in = NULL;
    struct http_stream *hs;
    struct rpc_stream *st;
    struct rpc_call call;
    struct berth_err herr;

    cs->deadline = BERTH_NO_DEADLINE;
    if (tmo != NULL && parse_timeout(tmo, http_request_started_ms(cs->req), &cs->deadline, err) < 0)
        return -1;
    if (check_protocol_version(cs->req, err) < 0 || read_envelope(cs, err) < 0 ||
        decode_input(cs, &in, err) < 0)
        return -1;
    if (cs->route->stream_handler == NULL)
        return berth_err_set(err, BERTH_UNIMPLEMENTED, "procedure '%s' is not implemented",
                             cs->route->path);
    if (cs->cc->streams == NULL)
        return berth_err_set(err, BERTH_UNAVAILABLE, "streams are not served");
    if (berth_deadline_left_ms(cs->deadline) == 0)
        return berth_err_set(err, BERTH_DEADLINE_EXCEEDED, "deadline exceeded before the call");
    hs = http_response_stream(cs->req, cs->resp, rpc_streams_queue_bytes(cs->cc->streams));
    if (hs == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "cannot open a stream");
    cs->resp->status = 200;
    http_response_header(cs->resp, "Content-Type",
                         cs->codec == CODEC_JSON ? CT_STREAM_JSON : CT_STREAM_PROTO);
    st = rpc_stream_open(cs->cc->streams, hs, cs->route, cs->codec == CODEC_JSON, cs->deadline,
                         cs->request_id, http_request_caller(cs->req, NULL), start_us);
    if (st == NULL)
        return 0; /* the stream ended at once: an empty body */
    call.arena = cs->arena;
    call.deadline = cs->deadline;
    call.procedure = cs->route->path;
    call.request_id = cs->request_id;
    berth_err_clear(&herr);
    /* The input lives in the request's arena: a handler copies what its
     * producer needs later. */
    if (cs->route->stream_handler(cs->route->handler_ctx, &call, in, st, &herr) < 0)
        rpc_stream_finish(st, &herr);
    rpc_stream_arm(st);
    rpc_stream_release(st); /* the set's reference remains until the end */
    return 0;
}

/* The one log line of every request that reached the Connect layer,
 * whatever its outcome. An unknown path is logged as path= (quoted: it comes
 * from outside), a known one as procedure=. */
void connect_log_call(const struct rpc_route *route, const char *path, int status,
                      const struct berth_err *err, int64_t start_us, const char *request_id,
                      const char *caller)
{
    log_call(route, path, status, err, start_us, request_id, caller);
}

static void log_call(const struct rpc_route *route, const char *path, int status,
                     const struct berth_err *err, int64_t start_us, const char *request_id,
                     const char *caller)
{
    int64_t us = berth_now_us() - start_us;
    char ms[32]; /* milliseconds with three decimals, without the float formatting */
    /* The server's own failures are warnings an operator should see; a
     * client's mistakes are info. */
    enum log_level lvl = err->code == BERTH_INTERNAL || err->code == BERTH_UNKNOWN ||
                                 err->code == BERTH_UNAVAILABLE || err->code == BERTH_DATA_LOSS ||
                                 err->code == BERTH_DEADLINE_EXCEEDED
                             ? LOG_LEVEL_WARN
                             : LOG_LEVEL_INFO;
    struct log_quoted qp, qe, qc;
    const char *key = route != NULL ? "procedure" : "path";
    const char *where = route != NULL ? route->path : log_quote(&qp, path);

    if (us < 0)
        us = 0;
    snprintf(ms, sizeof(ms), "%lld.%03lld", (long long)(us / 1000), (long long)(us % 1000));
    if (err->code == BERTH_OK)
        log_emit(lvl, "rpc", "%s=%s code=ok status=%d duration_ms=%s request_id=%s caller=%s", key,
                 where, status, ms, request_id, log_quote(&qc, caller));
    else
        log_emit(lvl, "rpc",
                 "%s=%s code=%s status=%d duration_ms=%s request_id=%s caller=%s error=%s", key,
                 where, berth_code_name(err->code), status, ms, request_id, log_quote(&qc, caller),
                 log_quote(&qe, err->msg));
}

/* A fresh request id, UUID-shaped (version 4, variant 1): a random base
 * drawn once per process plus a counter. Unique within the process, random
 * across restarts, and without a trip to the kernel's random source on
 * every request (which a random UUID each time would cost). */
static uuid_t request_id_base;

static void request_id_seed(void)
{
    uuid_generate_random(request_id_base);
}

static void new_request_id(uuid_t out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    static _Atomic uint64_t counter;
    uint64_t n = atomic_fetch_add(&counter, 1);

    pthread_once(&once, request_id_seed);
    memcpy(out, request_id_base, sizeof(uuid_t));
    for (int i = 15; i >= 8 && n > 0; i--) {
        unsigned sum = out[i] + (unsigned)(n & 0xff);

        out[i] = (unsigned char)sum;
        n = (n >> 8) + (sum >> 8);
    }
    out[6] = (unsigned char)((out[6] & 0x0f) | 0x40);
    out[8] = (unsigned char)((out[8] & 0x3f) | 0x80);
}

/* Routing, method and codec are checked here; their refusals (404, 405,
 * 415) are HTTP answers with the Connect code unimplemented in the log, as
 * the call never reaches a handler. Everything else goes through run_call. */
void connect_request_id(const struct http_request *req, char out[CONNECT_REQUEST_ID_MAX + 1])
{
    const char *h = http_request_header(req, "X-Request-Id");
    size_t n = h != NULL ? strlen(h) : 0;
    uuid_t uu;

    if (n > 0 && n <= REQUEST_ID_MAX &&
        strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789._:-") == n) {
        memcpy(out, h, n + 1);
        return;
    }
    new_request_id(uu);
    uuid_unparse_lower(uu, out);
}

void connect_handle(const struct connect_config *cc, const struct http_request *req,
                    struct http_response *resp, struct arena *arena)
{
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    struct call_state cs = {.cc = cc, .req = req, .resp = resp, .arena = arena};
    struct berth_err err;
    int64_t start = berth_now_us();
    char request_id[REQUEST_ID_MAX + 1], quoted[40];
    int is_get;

    berth_err_clear(&err);
    connect_request_id(req, request_id);
    cs.request_id = request_id;
    cs.route = router_find(cc->router, path, strlen(path));
    if (cs.route == NULL) {
        /* Unknown procedure: 404, and never the code not_found. */
        char qpath[80];
        berth_err_quote(qpath, sizeof(qpath), path, 64);
        berth_err_set(&err, BERTH_UNIMPLEMENTED, "procedure '%s' not found; berthd serves %s",
                      qpath, router_services(cc->router));
        connect_write_error(resp, &err);
        resp->status = 404;
        goto out;
    }
    is_get = strcmp(method, "GET") == 0;
    if (!(strcmp(method, "POST") == 0 || (is_get && cs.route->no_side_effects))) {
        berth_err_quote(quoted, sizeof(quoted), method, 16);
        berth_err_set(&err, BERTH_UNIMPLEMENTED, "http method '%s' is not allowed", quoted);
        respond_status(resp, 405);
        http_response_header(resp, "Allow", cs.route->no_side_effects ? "GET, POST" : "POST");
        goto out;
    }
    if (cs.route->server_streaming) {
        if (connect_stream_content_type(http_request_header(req, "Content-Type"), &cs.codec) < 0) {
            berth_err_set(&err, BERTH_UNIMPLEMENTED, "unsupported or missing content type");
            respond_status(resp, 415);
            http_response_header(resp, "Accept-Post", ACCEPT_POST_STREAM);
            goto out;
        }
        if (run_stream(&cs, start, &err) == 0) {
            /* Under way: the stream logs its own line when it ends. */
            const char *echo = arena_strdup(arena, request_id);
            if (echo != NULL)
                http_response_header(resp, "X-Request-Id", echo);
            return;
        }
        atomic_fetch_add(&cs.route->stats.in_flight, 1);
        connect_stream_write_error(resp, cs.codec == CODEC_JSON ? CT_STREAM_JSON : CT_STREAM_PROTO,
                                   &err, request_id);
        rpc_stats_record(&cs.route->stats, err.code, berth_now_us() - start);
        atomic_fetch_sub(&cs.route->stats.in_flight, 1);
        goto out;
    }
    if (is_get) {
        const char *enc;
        size_t elen;
        if (http_request_query(req, "encoding", &enc, &elen) < 0 ||
            (strcmp(enc, "json") != 0 && strcmp(enc, "proto") != 0)) {
            berth_err_set(&err, BERTH_UNIMPLEMENTED, "unsupported or missing GET encoding");
            goto unsupported;
        }
        cs.codec = strcmp(enc, "json") == 0 ? CODEC_JSON : CODEC_PROTO;
    } else if (parse_content_type(http_request_header(req, "Content-Type"), &cs.codec) < 0) {
        berth_err_set(&err, BERTH_UNIMPLEMENTED, "unsupported or missing content type");
        goto unsupported;
    }
    cs.gzip_response = gzip_accepted(http_request_header(req, "Accept-Encoding"));
    atomic_fetch_add(&cs.route->stats.in_flight, 1);
    if (run_call(&cs, &err) < 0)
        connect_write_error(resp, &err);
    rpc_stats_record(&cs.route->stats, err.code, berth_now_us() - start);
    atomic_fetch_sub(&cs.route->stats.in_flight, 1);
    goto out;
unsupported:
    respond_status(resp, 415);
    http_response_header(resp, "Accept-Post", ACCEPT_POST);
out:
    /* Every answer names its request, so a caller can find its log line. */
    {
        const char *echo = arena_strdup(arena, request_id);
        if (echo != NULL)
            http_response_header(resp, "X-Request-Id", echo);
    }
    log_call(cs.route, path, resp->status, &err, start, request_id, http_request_caller(req, NULL));
}

enum http_run connect_classify(const struct connect_config *cc, const struct http_request *req)
{
    const char *path = http_request_path(req);
    const struct rpc_route *rt = router_find(cc->router, path, strlen(path));

    return rt != NULL && rt->from_memory && rt->handler != NULL && !rt->server_streaming
               ? HTTP_RUN_INLINE
               : HTTP_RUN_WORKER;
}
