/* What one request may decode into (berth/codec_limits.h): the JSON text
 * and the binary wire bytes are counted before anything is built, and a
 * list, map, object or field past its bound is refused naming the field,
 * as is a body past the bound of values in all. */
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/buf.h"
#include "berth/codec_limits.h"
#include "berth/err.h"
#include "berth/json_codec.h"
#include "berth/pb_check.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))
#define CREATE_VM (&metal__vmprovisioner__v1__create_vm_request__descriptor)
#define LIST_VMS (&metal__vmprovisioner__v1__list_vms_request__descriptor)
#define INVALID BERTH_INVALID_ARGUMENT
#define EXHAUSTED BERTH_RESOURCE_EXHAUSTED

/* Small bounds, so the rows stay readable. */
static const struct codec_limits small = {.max_elements = 3, .max_nodes = 20};
static const struct codec_limits few_nodes = {.max_elements = 3, .max_nodes = 12};
static const struct codec_limits two_nodes = {.max_elements = 3, .max_nodes = 2};
static const struct codec_limits four_nodes = {.max_elements = 3, .max_nodes = 4};

static void test_json_limits(void)
{
    static const struct {
        const char *what;
        const struct codec_limits *lim;
        const ProtobufCMessageDescriptor *desc;
        const char *json;
        enum berth_code code; /* BERTH_OK: decodes */
        const char *msg;      /* the error's message, or its start when it ends in '*' */
    } rows[] = {
        {"a list at the bound", &small, LIST_VMS, "{\"stateFilter\":[1,1,1]}", BERTH_OK, NULL},
        {"a list past it", &small, LIST_VMS, "{\"stateFilter\":[1,1,1,1]}", INVALID,
         "invalid value for field 'stateFilter': more than 3 elements"},
        {"the proto name is echoed as given", &small, LIST_VMS, "{\"state_filter\":[1,1,1,1]}",
         INVALID, "invalid value for field 'state_filter': more than 3 elements"},
        {"a map past it", &small, CREATE_VM,
         "{\"config\":{\"metadata\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\",\"d\":\"4\"}}}", INVALID,
         "invalid value for field 'config.metadata': more than 3 members"},
        {"a map inside a list element", &small, CREATE_VM,
         "{\"config\":{\"storage\":[{},{\"options\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\","
         "\"d\":\"4\"}}]}}",
         INVALID, "invalid value for field 'config.storage[1].options': more than 3 members"},
        {"the request's own members", &small, CREATE_VM, "{\"a\":1,\"b\":2,\"c\":3,\"d\":4}",
         INVALID, "the request holds more than 3 members"},
        {"unknown keys count too", &small, CREATE_VM, "{\"x\":[[],[],[],[]]}", INVALID,
         "invalid value for field 'x': more than 3 elements"},
        {"a long key is cut", &small, CREATE_VM,
         "{\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\":[1,1,1,1]}", INVALID,
         "invalid value for field 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...': more than 3 elements"},
        {"brackets and commas inside strings are text", &small, CREATE_VM,
         "{\"vmId\":\"[1,2,3,4],{\\\"a\\\":[1,2,3,4]}\",\"customerId\":\",,,,\"}", BERTH_OK, NULL},
        {"values in all, where they ran out", &few_nodes, CREATE_VM,
         "{\"config\":{\"storage\":[{\"options\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}},"
         "{\"options\":{\"a\":\"1\",\"b\":\"2\",\"c\":\"3\"}}]}}",
         EXHAUSTED,
         "request too large to decode: more than 12 values, at field 'config.storage[1].options'"},
        {"values in all at the root", &two_nodes, CREATE_VM,
         "{\"vmId\":\"a\",\"customerId\":\"b\"}", EXHAUSTED,
         "request too large to decode: more than 2 values"},
        {"malformed text is the parser's to refuse", &small, LIST_VMS, "{\"stateFilter\":[1,1",
         INVALID, "malformed JSON at byte*"},
        {"no limits", NULL, LIST_VMS, "{\"stateFilter\":[1,1,1,1,1,1]}", BERTH_OK, NULL},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        ProtobufCMessage *msg = NULL;
        struct berth_err err;
        struct arena *a = arena_new();
        int rc;

        berth_err_clear(&err);
        rc = json_codec_decode_limited(rows[i].desc, rows[i].json, strlen(rows[i].json),
                                       rows[i].lim, arena_allocator(a), &msg, &err);
        if (rows[i].code == BERTH_OK) {
            CHECK_MSG(rc == 0 && msg != NULL, "%s: %s", rows[i].what, err.msg);
        } else {
            size_t n = strlen(rows[i].msg);
            int prefix = rows[i].msg[n - 1] == '*';
            CHECK_MSG(rc < 0 && err.code == rows[i].code, "%s: rc %d code %d %s", rows[i].what, rc,
                      err.code, err.msg);
            CHECK_MSG(prefix ? strncmp(err.msg, rows[i].msg, n - 1) == 0
                             : strcmp(err.msg, rows[i].msg) == 0,
                      "%s: got \"%s\"", rows[i].what, err.msg);
        }
        arena_free(a);
    }
}

/* {"stateFilter":[1,1,...]} with n elements (free() it). */
static char *state_list(size_t n)
{
    struct buf b;
    int ok;

    buf_init(&b, (size_t)1 << 24);
    ok = buf_appends(&b, "{\"stateFilter\":[", NULL) == 0;
    for (size_t i = 0; i < n && ok; i++)
        ok = buf_appends(&b, i > 0 ? ",1" : "1", NULL) == 0;
    ok = ok && buf_appends(&b, "]}", NULL) == 0;
    if (!ok) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* The bounds requests get, and a text past cJSON's nesting, which the
 * count leaves to the parser. */
static void test_json_defaults(void)
{
    const struct codec_limits lim = {CODEC_MAX_ELEMENTS, CODEC_MAX_NODES};
    char *at = state_list(CODEC_MAX_ELEMENTS), *past = state_list(CODEC_MAX_ELEMENTS + 1);
    ProtobufCMessage *msg = NULL;
    struct berth_err err;
    struct buf deep;
    int ok;

    CHECK(at != NULL && past != NULL);
    berth_err_clear(&err);
    CHECK(at != NULL &&
          json_codec_decode_limited(LIST_VMS, at, strlen(at), &lim, NULL, &msg, &err) == 0);
    CHECK(msg != NULL &&
          ((Metal__Vmprovisioner__V1__ListVmsRequest *)msg)->n_state_filter == CODEC_MAX_ELEMENTS);
    protobuf_c_message_free_unpacked(msg, NULL);
    msg = NULL;
    berth_err_clear(&err);
    CHECK(past != NULL &&
          json_codec_decode_limited(LIST_VMS, past, strlen(past), &lim, NULL, &msg, &err) < 0);
    CHECK_STR(err.msg, "invalid value for field 'stateFilter': more than 10000 elements");
    free(at);
    free(past);

    buf_init(&deep, (size_t)1 << 20);
    ok = buf_appends(&deep, "{\"x\":", NULL) == 0;
    for (int i = 0; i < 1500 && ok; i++)
        ok = buf_appends(&deep, "[", NULL) == 0;
    for (int i = 0; i < 1500 && ok; i++)
        ok = buf_appends(&deep, "]", NULL) == 0;
    ok = ok && buf_appends(&deep, "}", NULL) == 0;
    CHECK(ok);
    berth_err_clear(&err);
    CHECK(ok &&
          json_codec_decode_limited(CREATE_VM, deep.data, deep.len, &lim, NULL, &msg, &err) < 0);
    CHECK_MSG(err.code == INVALID && strncmp(err.msg, "malformed JSON at byte", 22) == 0, "%s",
              err.msg);
    buf_release(&deep);
}

static void test_binary_limits(void)
{
    static const struct {
        const char *what;
        const struct codec_limits *lim;
        const ProtobufCMessageDescriptor *desc;
        const char *bytes;
        size_t len;
        enum berth_code code; /* BERTH_OK: within the bounds */
        const char *msg;
    } rows[] = {
#define B(s) s, sizeof(s) - 1
        {"a packed list at the bound", &small, LIST_VMS, B("\x0a\x03\x01\x01\x01"), BERTH_OK, NULL},
        {"a packed list past it", &small, LIST_VMS, B("\x0a\x04\x01\x01\x01\x01"), INVALID,
         "invalid value for field 'stateFilter': more than 3 elements"},
        {"packed varints count one by one", &small, LIST_VMS, B("\x0a\x05\x81\x01\x01\x01\x01"),
         INVALID, "invalid value for field 'stateFilter': more than 3 elements"},
        {"an unpacked list past it", &small, LIST_VMS, B("\x08\x01\x08\x01\x08\x01\x08\x01"),
         INVALID, "invalid value for field 'stateFilter': more than 3 elements"},
        {"packed and unpacked add up", &small, LIST_VMS, B("\x0a\x02\x01\x01\x08\x01\x08\x01"),
         INVALID, "invalid value for field 'stateFilter': more than 3 elements"},
        {"a nested list of strings", &small, CREATE_VM,
         B("\x12\x0b\xa2\x06\x08\x12\x00\x12\x00\x12\x00\x12\x00"), INVALID,
         "invalid value for field 'config.container.command': more than 3 elements"},
        {"a message given twice merges: its lists add up", &small, CREATE_VM,
         B("\x12\x07\xa2\x06\x04\x12\x00\x12\x00\x12\x07\xa2\x06\x04\x12\x00\x12\x00"), INVALID,
         "invalid value for field 'config.container.command': more than 3 elements"},
        {"list elements are messages of their own", &small, CREATE_VM,
         B("\x12\x0c\x22\x04\x32\x00\x32\x00\x22\x04\x32\x00\x32\x00"), BERTH_OK, NULL},
        {"a map inside a list element", &small, CREATE_VM,
         B("\x12\x0c\x22\x00\x22\x08\x32\x00\x32\x00\x32\x00\x32\x00"), INVALID,
         "invalid value for field 'config.storage[1].options': more than 3 elements"},
        {"a singular field given again and again", &small, CREATE_VM,
         B("\x0a\x00\x0a\x00\x0a\x00\x0a\x00"), INVALID,
         "invalid value for field 'vmId': more than 3 occurrences"},
        {"unknown fields of the request", &small, CREATE_VM, B("\x48\x00\x50\x00\x58\x00\x60\x00"),
         INVALID, "the request holds more than 3 unknown fields"},
        {"unknown fields of a nested message", &small, CREATE_VM,
         B("\x12\x08\x48\x00\x50\x00\x58\x00\x60\x00"), INVALID,
         "invalid value for field 'config': more than 3 unknown fields"},
        {"values in all", &four_nodes, CREATE_VM, B("\x0a\x00\x1a\x00\x12\x04\x22\x00\x22\x00"),
         EXHAUSTED, "request too large to decode: more than 4 values, at field 'config.storage'"},
        {"malformed bytes", &small, CREATE_VM, B("\x0a\x05\x61\x62"), INVALID,
         "malformed protobuf body for 'metal.vmprovisioner.v1.CreateVmRequest'"},
        {"a field number protobuf-c takes and this does not, then more", &small, CREATE_VM,
         B("\x91\x9d\xd2\x9f\x5d\x00\x48\x00\x50\x00\x58\x00\x60\x00"), INVALID,
         "malformed protobuf body for 'metal.vmprovisioner.v1.CreateVmRequest'"},
#undef B
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        struct berth_err err;
        int rc;

        berth_err_clear(&err);
        rc = pb_check_limits(rows[i].desc, (const uint8_t *)rows[i].bytes, rows[i].len, rows[i].lim,
                             &err);
        if (rows[i].code == BERTH_OK) {
            CHECK_MSG(rc == 0, "%s: %s", rows[i].what, err.msg);
        } else {
            CHECK_MSG(rc < 0 && err.code == rows[i].code, "%s: rc %d code %d", rows[i].what, rc,
                      err.code);
            CHECK_MSG(strcmp(err.msg, rows[i].msg) == 0, "%s: got \"%s\"", rows[i].what, err.msg);
        }
    }
}

int main(void)
{
    test_json_limits();
    test_json_defaults();
    test_binary_limits();
    return test_summary("test_codec_limits");
}
