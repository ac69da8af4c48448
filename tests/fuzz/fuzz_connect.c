/* libFuzzer harness for the Connect request layer (connect_handle): the
 * route, method, content type, protocol version, Connect-Timeout-Ms,
 * compression, the GET query form (encoding, base64, compression), stream
 * envelopes, decoding within small limits, and the answer's encoding, over
 * a request made from the input (format in http_fake.h). Every unary
 * procedure answers its empty output message; streams are not served. The
 * answer must be one a client can read: a known status, and for JSON a body
 * that parses, an error with a code that is never a server fault. */
#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/buf.h"
#include "berth/connect.h"
#include "berth/gzip.h"
#include "berth/log.h"
#include "berth/router.h"
#include "http_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_BODY 65536

static struct router *router;

static int empty_answer(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                        ProtobufCMessage **out, struct berth_err *err);
static void setup(void);
static const char *header_of(const struct http_response *resp, const char *name);
static void check_body(const struct http_response *resp);

static int empty_answer(void *ctx, struct rpc_call *call, const ProtobufCMessage *in,
                        ProtobufCMessage **out, struct berth_err *err)
{
    const struct rpc_route *rt = ctx;

    (void)in;
    *out = arena_message(call->arena, rt->output);
    return *out != NULL ? 0 : berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    router = router_new();
    if (router == NULL)
        abort();
    for (size_t i = 0; i < router_count(router); i++) {
        struct rpc_route *rt = router_at(router, i);
        if (!rt->server_streaming && router_set_handler(router, rt->path, empty_answer, rt) < 0)
            abort();
    }
}

static const char *header_of(const struct http_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcmp(resp->header_name[i], name) == 0)
            return resp->header_value[i];
    return NULL;
}

/* JSON answers parse; an error names a code that is the client's doing. */
static void check_body(const struct http_response *resp)
{
    const char *ct = header_of(resp, "Content-Type"), *enc = header_of(resp, "Content-Encoding");
    struct buf plain;
    struct berth_err err;
    cJSON *root, *code;

    if (ct == NULL || strcmp(ct, "application/json") != 0)
        return;
    buf_init(&plain, (size_t)64 << 20);
    berth_err_clear(&err);
    if (enc != NULL) {
        if (strcmp(enc, "gzip") != 0 || resp->status != 200 ||
            gzip_inflate(resp->body.data, resp->body.len, &plain, &err) < 0)
            abort(); /* only a success is compressed, and then well */
    } else if (buf_append(&plain, resp->body.data ? resp->body.data : "", resp->body.len, NULL) <
               0) {
        abort();
    }
    root = cJSON_ParseWithLength(plain.data ? plain.data : "", plain.len);
    if (root == NULL && plain.len > 0)
        abort();
    if (resp->status != 200 && root != NULL) {
        code = cJSON_GetObjectItemCaseSensitive(root, "code");
        if (!cJSON_IsString(code) || strcmp(code->valuestring, "internal") == 0 ||
            strcmp(code->valuestring, "unknown") == 0)
            abort();
    }
    cJSON_Delete(root);
    buf_release(&plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct connect_config base = {.max_body_bytes = MAX_BODY,
                                               .limits = {.max_elements = 40, .max_nodes = 400}};
    struct connect_config cc = base;
    struct http_response resp;
    struct http_request *req;
    struct arena *arena;

    if (router == NULL)
        setup();
    cc.router = router;
    req = http_fake_parse(data, size, MAX_BODY);
    arena = arena_new();
    if (req == NULL || arena == NULL) {
        http_fake_free(req);
        arena_free(arena);
        return 0;
    }
    memset(&resp, 0, sizeof(resp));
    resp.status = 500;
    buf_init(&resp.body, SIZE_MAX / 2);
    connect_handle(&cc, req, &resp, arena);
    switch (resp.status) {
    case 200:
    case 400:
    case 401:
    case 403:
    case 404:
    case 405:
    case 409:
    case 415:
    case 429:
    case 499:
    case 501:
    case 503:
    case 504:
        break;
    default:
        abort(); /* 500: a server fault, or a status no client expects */
    }
    if (resp.stream != NULL)
        abort(); /* no stream can open here */
    check_body(&resp);
    buf_release(&resp.body);
    arena_free(arena);
    http_fake_free(req);
    return 0;
}
