/* The proto3 JSON codec: round trips (binary pack equality as the oracle),
 * every input rule and error message of CONNECT.md, output formatting, the
 * nesting limit and memory on every path. */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "berth/arena.h"
#include "berth/buf.h"
#include "berth/err.h"
#include "berth/json_codec.h"
#include "berth/pb_check.h"
#include "krane/v1/deployment.pb-c.h"
#include "metal/vmprovisioner/v1/vmprovisioner.pb-c.h"
#include "testlib.h"
#include "wkt_test.pb-c.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))

typedef Metal__Vmprovisioner__V1__CreateVmRequest CreateVmRequest;
typedef Metal__Vmprovisioner__V1__VmConfig VmConfig;
typedef Metal__Vmprovisioner__V1__VmInfo VmInfo;
typedef Metal__Vmprovisioner__V1__GetVmInfoResponse GetVmInfoResponse;
typedef Metal__Vmprovisioner__V1__ListVmsRequest ListVmsRequest;

#define CREATE_VM (&metal__vmprovisioner__v1__create_vm_request__descriptor)
#define CREATE_VM_RESP (&metal__vmprovisioner__v1__create_vm_response__descriptor)
#define DELETE_VM (&metal__vmprovisioner__v1__delete_vm_request__descriptor)
#define SHUTDOWN_VM (&metal__vmprovisioner__v1__shutdown_vm_request__descriptor)
#define LIST_VMS (&metal__vmprovisioner__v1__list_vms_request__descriptor)
#define LIST_VMS_RESP (&metal__vmprovisioner__v1__list_vms_response__descriptor)
#define VM_INFO_RESP (&metal__vmprovisioner__v1__get_vm_info_response__descriptor)
#define CONTAINER (&metal__vmprovisioner__v1__container_spec__descriptor)
#define DEPLOYMENT (&krane__v1__deployment_request__descriptor)
#define CREATE_DEPLOYMENT (&krane__v1__create_deployment_request__descriptor)
#define WKT (&berth__test__wkt_test__descriptor)
#define TIMESTAMP (&google__protobuf__timestamp__descriptor)
#define VALUE (&google__protobuf__value__descriptor)

/* ------------------------------------------------------------------------
 * A hand-written test message: proto/ has no recursion, no oneof, no
 * proto3 optional and only string maps, so this descriptor supplies every
 * field type and shape the codec must handle. Its proto3 form would be:
 *   message Kitchen { int32 i32 = 1; sint32 s32 = 2; ... map<uint32,
 *   VmState> states = 32; }  (see kitchen_fields below)
 * ------------------------------------------------------------------------ */
typedef struct Kitchen Kitchen;
typedef struct {
    ProtobufCMessage base;
    int64_t key;
    char *value;
} KitchenByIdEntry;
typedef struct {
    ProtobufCMessage base;
    protobuf_c_boolean key;
    int32_t value;
} KitchenFlagsEntry;
typedef struct {
    ProtobufCMessage base;
    char *key;
    Kitchen *value;
} KitchenNodesEntry;
typedef struct {
    ProtobufCMessage base;
    uint32_t key;
    int value;
} KitchenStatesEntry;

struct Kitchen {
    ProtobufCMessage base;
    int32_t i32, s32, sf32;
    int64_t i64, s64, sf64;
    uint32_t u32, f32;
    uint64_t u64, f64;
    float fl;
    double db;
    protobuf_c_boolean b;
    char *str;
    ProtobufCBinaryData by;
    int en;
    Kitchen *child;
    protobuf_c_boolean has_opt_i32;
    int32_t opt_i32;
    char *opt_str;
    uint32_t choice_case;
    union {
        char *one_str;
        int64_t one_i64;
        Kitchen *one_msg;
    };
    size_t n_rep_bytes;
    ProtobufCBinaryData *rep_bytes;
    size_t n_rep_double;
    double *rep_double;
    size_t n_rep_float;
    float *rep_float;
    size_t n_rep_i64;
    int64_t *rep_i64;
    size_t n_rep_str;
    char **rep_str;
    size_t n_rep_enum;
    int *rep_enum;
    size_t n_by_id;
    KitchenByIdEntry **by_id;
    size_t n_flags;
    KitchenFlagsEntry **flags;
    size_t n_nodes;
    KitchenNodesEntry **nodes;
    size_t n_states;
    KitchenStatesEntry **states;
};

static const ProtobufCMessageDescriptor kitchen_desc;
static const ProtobufCMessageDescriptor by_id_entry_desc;
static const ProtobufCMessageDescriptor flags_entry_desc;
static const ProtobufCMessageDescriptor nodes_entry_desc;
static const ProtobufCMessageDescriptor states_entry_desc;

#define VM_STATE (&metal__vmprovisioner__v1__vm_state__descriptor)
#define EMPTY_STR ((char *)protobuf_c_empty_string)
#define FIELD(name, id, label, type, q, off, desc, def, flags)                                     \
    {                                                                                              \
        name, id, PROTOBUF_C_LABEL_##label, PROTOBUF_C_TYPE_##type, q, off, desc, def, flags, 0,   \
            NULL, NULL                                                                             \
    }
#define PLAIN(S, name, id, type, member)                                                           \
    FIELD(name, id, NONE, type, 0, offsetof(S, member), NULL, NULL, 0)
#define STRING(S, name, id, member)                                                                \
    FIELD(name, id, NONE, STRING, 0, offsetof(S, member), NULL, protobuf_c_empty_string, 0)
#define TYPED(S, name, id, type, member, desc)                                                     \
    FIELD(name, id, NONE, type, 0, offsetof(S, member), desc, NULL, 0)
#define ONEOF(name, id, type, member, desc, def)                                                   \
    FIELD(name, id, NONE, type, offsetof(Kitchen, choice_case), offsetof(Kitchen, member), desc,   \
          def, PROTOBUF_C_FIELD_FLAG_ONEOF)
#define REPEATED(name, id, type, member, desc)                                                     \
    FIELD(name, id, REPEATED, type, offsetof(Kitchen, n_##member), offsetof(Kitchen, member),      \
          desc, NULL, 0)
#define DESCRIPTOR(short_name, S, fields, by_name, ranges, init)                                   \
    {                                                                                              \
        PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC, "test." short_name, short_name, short_name, "test",  \
            sizeof(S), ROWS(fields), fields, by_name, 1, ranges, init, NULL, NULL, NULL            \
    }

static const ProtobufCFieldDescriptor kitchen_fields[] = {
    PLAIN(Kitchen, "i32", 1, INT32, i32),
    PLAIN(Kitchen, "s32", 2, SINT32, s32),
    PLAIN(Kitchen, "sf32", 3, SFIXED32, sf32),
    PLAIN(Kitchen, "i64", 4, INT64, i64),
    PLAIN(Kitchen, "s64", 5, SINT64, s64),
    PLAIN(Kitchen, "sf64", 6, SFIXED64, sf64),
    PLAIN(Kitchen, "u32", 7, UINT32, u32),
    PLAIN(Kitchen, "f32", 8, FIXED32, f32),
    PLAIN(Kitchen, "u64", 9, UINT64, u64),
    PLAIN(Kitchen, "f64", 10, FIXED64, f64),
    PLAIN(Kitchen, "fl", 11, FLOAT, fl),
    PLAIN(Kitchen, "db", 12, DOUBLE, db),
    PLAIN(Kitchen, "b", 13, BOOL, b),
    STRING(Kitchen, "str", 14, str),
    PLAIN(Kitchen, "by", 15, BYTES, by),
    TYPED(Kitchen, "en", 16, ENUM, en, VM_STATE),
    TYPED(Kitchen, "child", 17, MESSAGE, child, &kitchen_desc),
    FIELD("opt_i32", 18, OPTIONAL, INT32, offsetof(Kitchen, has_opt_i32),
          offsetof(Kitchen, opt_i32), NULL, NULL, 0),
    FIELD("opt_str", 19, OPTIONAL, STRING, 0, offsetof(Kitchen, opt_str), NULL, NULL, 0),
    ONEOF("one_str", 20, STRING, one_str, NULL, protobuf_c_empty_string),
    ONEOF("one_i64", 21, INT64, one_i64, NULL, NULL),
    ONEOF("one_msg", 22, MESSAGE, one_msg, &kitchen_desc, NULL),
    REPEATED("rep_bytes", 23, BYTES, rep_bytes, NULL),
    REPEATED("rep_double", 24, DOUBLE, rep_double, NULL),
    REPEATED("rep_float", 25, FLOAT, rep_float, NULL),
    REPEATED("rep_i64", 26, INT64, rep_i64, NULL),
    REPEATED("rep_str", 27, STRING, rep_str, NULL),
    REPEATED("rep_enum", 28, ENUM, rep_enum, VM_STATE),
    REPEATED("by_id", 29, MESSAGE, by_id, &by_id_entry_desc),
    REPEATED("flags", 30, MESSAGE, flags, &flags_entry_desc),
    REPEATED("nodes", 31, MESSAGE, nodes, &nodes_entry_desc),
    REPEATED("states", 32, MESSAGE, states, &states_entry_desc),
};
static const unsigned kitchen_by_name[] = {12, 14, 28, 16, 11, 15, 7,  9,  10, 29, 0,
                                           3,  30, 20, 21, 19, 17, 18, 22, 23, 27, 24,
                                           25, 26, 1,  4,  2,  5,  31, 13, 6,  8};
static const ProtobufCIntRange kitchen_ranges[] = {{1, 0}, {0, 32}};

static const ProtobufCFieldDescriptor by_id_fields[] = {
    PLAIN(KitchenByIdEntry, "key", 1, INT64, key),
    STRING(KitchenByIdEntry, "value", 2, value),
};
static const ProtobufCFieldDescriptor flags_fields[] = {
    PLAIN(KitchenFlagsEntry, "key", 1, BOOL, key),
    PLAIN(KitchenFlagsEntry, "value", 2, INT32, value),
};
static const ProtobufCFieldDescriptor nodes_fields[] = {
    STRING(KitchenNodesEntry, "key", 1, key),
    TYPED(KitchenNodesEntry, "value", 2, MESSAGE, value, &kitchen_desc),
};
static const ProtobufCFieldDescriptor states_fields[] = {
    PLAIN(KitchenStatesEntry, "key", 1, UINT32, key),
    TYPED(KitchenStatesEntry, "value", 2, ENUM, value, VM_STATE),
};
static const unsigned entry_by_name[] = {0, 1};
static const ProtobufCIntRange entry_ranges[] = {{1, 0}, {0, 2}};

static void kitchen_init(ProtobufCMessage *m)
{
    Kitchen *k = (Kitchen *)m;

    memset(k, 0, sizeof(*k));
    k->base.descriptor = &kitchen_desc;
    k->str = EMPTY_STR;
}

static void by_id_init(ProtobufCMessage *m)
{
    KitchenByIdEntry *e = (KitchenByIdEntry *)m;

    memset(e, 0, sizeof(*e));
    e->base.descriptor = &by_id_entry_desc;
    e->value = EMPTY_STR;
}

static void flags_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(KitchenFlagsEntry));
    m->descriptor = &flags_entry_desc;
}

static void nodes_init(ProtobufCMessage *m)
{
    KitchenNodesEntry *e = (KitchenNodesEntry *)m;

    memset(e, 0, sizeof(*e));
    e->base.descriptor = &nodes_entry_desc;
    e->key = EMPTY_STR;
}

static void states_init(ProtobufCMessage *m)
{
    memset(m, 0, sizeof(KitchenStatesEntry));
    m->descriptor = &states_entry_desc;
}

static const ProtobufCMessageDescriptor kitchen_desc =
    DESCRIPTOR("Kitchen", Kitchen, kitchen_fields, kitchen_by_name, kitchen_ranges, kitchen_init);
static const ProtobufCMessageDescriptor by_id_entry_desc = DESCRIPTOR(
    "ByIdEntry", KitchenByIdEntry, by_id_fields, entry_by_name, entry_ranges, by_id_init);
static const ProtobufCMessageDescriptor flags_entry_desc = DESCRIPTOR(
    "FlagsEntry", KitchenFlagsEntry, flags_fields, entry_by_name, entry_ranges, flags_init);
static const ProtobufCMessageDescriptor nodes_entry_desc = DESCRIPTOR(
    "NodesEntry", KitchenNodesEntry, nodes_fields, entry_by_name, entry_ranges, nodes_init);
static const ProtobufCMessageDescriptor states_entry_desc = DESCRIPTOR(
    "StatesEntry", KitchenStatesEntry, states_fields, entry_by_name, entry_ranges, states_init);

#define KITCHEN (&kitchen_desc)

/* ------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------ */

/* JSON of msg (free() it), or NULL with the reason printed. */
static char *encode(const ProtobufCMessage *msg)
{
    struct buf b;
    struct berth_err err;

    berth_err_clear(&err);
    buf_init(&b, (size_t)1 << 20);
    if (json_codec_encode(msg, &b, &err) < 0) {
        fprintf(stderr, "encode failed: %s\n", err.msg);
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* Decode with the system allocator (free with protobuf_c_message_free_unpacked(m, NULL)). */
static ProtobufCMessage *decode(const ProtobufCMessageDescriptor *desc, const char *json,
                                struct berth_err *err)
{
    ProtobufCMessage *msg = NULL;

    berth_err_clear(err);
    if (json_codec_decode(desc, json, strlen(json), NULL, &msg, err) < 0)
        return NULL;
    return msg;
}

/* Binary forms equal: the oracle for "the same message". */
static int same_packed(const ProtobufCMessage *a, const ProtobufCMessage *b)
{
    size_t na = protobuf_c_message_get_packed_size(a);
    size_t nb = protobuf_c_message_get_packed_size(b);
    uint8_t *pa = malloc(na + 1), *pb = malloc(nb + 1);
    int same = 0;

    if (pa != NULL && pb != NULL && na == nb) {
        protobuf_c_message_pack(a, pa);
        protobuf_c_message_pack(b, pb);
        same = memcmp(pa, pb, na) == 0;
    }
    free(pa);
    free(pb);
    return same;
}

/* decode -> encode; the output JSON (free() it) or NULL with err filled. */
static char *canonical(const ProtobufCMessageDescriptor *desc, const char *json,
                       ProtobufCAllocator *alloc, struct berth_err *err)
{
    ProtobufCMessage *msg = NULL;
    char *out = NULL;

    berth_err_clear(err);
    if (json_codec_decode(desc, json, strlen(json), alloc, &msg, err) < 0)
        return NULL;
    out = encode(msg);
    protobuf_c_message_free_unpacked(msg, alloc);
    return out;
}

/* Full round trip of a canonical JSON text: decode, compare the encoding
 * with the text, decode that again and compare the binary forms. */
static void check_round_trip(const ProtobufCMessageDescriptor *desc, const char *json)
{
    struct berth_err err;
    struct arena *arena = arena_new();
    ProtobufCMessage *a = decode(desc, json, &err), *b = NULL;
    char *out = NULL;

    CHECK_MSG(a != NULL, "%s", err.msg);
    if (a == NULL || arena == NULL)
        goto out;
    out = encode(a);
    CHECK_STR(out, json);
    if (out == NULL)
        goto out;
    CHECK(json_codec_decode(desc, out, strlen(out), arena_allocator(arena), &b, &err) == 0);
    CHECK(b != NULL && same_packed(a, b));
out:
    free(out);
    protobuf_c_message_free_unpacked(a, NULL);
    arena_free(arena);
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------ */

static void test_camel_names(void)
{
    static const struct {
        const char *what, *in, *out;
        size_t outsz;
    } rows[] = {
        {"one underscore", "vm_id", "vmId", 32},
        {"digit before underscore", "ipv4_config", "ipv4Config", 32},
        {"several parts", "sampled_at_unix_ms", "sampledAtUnixMs", 32},
        {"no underscore", "replicas", "replicas", 32},
        {"double underscore", "a__b", "aB", 32},
        {"trailing underscore", "x_", "x", 32},
        {"digit after underscore", "a_1b", "a1b", 32},
        {"truncated to the buffer", "vm_id", "vmI", 4},
    };
    char out[32];

    for (size_t i = 0; i < ROWS(rows); i++) {
        json_codec_camel_name(rows[i].in, out, rows[i].outsz);
        CHECK_MSG(strcmp(out, rows[i].out) == 0, "%s: got %s", rows[i].what, out);
    }
    json_codec_camel_name("vm_id", out, 0); /* a zero size writes nothing */
}

/* ------------------------------------------------------------------------
 * Round trips
 * ------------------------------------------------------------------------ */

/* CreateVmRequest with every field of VmConfig set, in canonical form
 * (camelCase, field-number order, defaults left out). */
static const char full_create_vm[] =
    "{\"vmId\":\"vm-1\",\"config\":{"
    "\"cpu\":{\"vcpuCount\":4,\"maxVcpuCount\":8,"
    "\"topology\":{\"sockets\":1,\"coresPerSocket\":4,\"threadsPerCore\":2},"
    "\"features\":{\"avx\":\"on\",\"sse\":\"off\"}},"
    "\"memory\":{\"sizeBytes\":\"8589934592\",\"hotplugEnabled\":true,"
    "\"maxSizeBytes\":\"9223372036854775807\",\"backing\":{\"hugepages\":\"2M\"}},"
    "\"boot\":{\"kernelPath\":\"/boot/vmlinuz\",\"initrdPath\":\"/boot/initrd\","
    "\"kernelArgs\":\"console=ttyS0 quiet\",\"bootOptions\":{\"order\":\"disk\"}},"
    "\"storage\":[{\"id\":\"root\",\"path\":\"/var/lib/vm/root.img\",\"readOnly\":true,"
    "\"isRootDevice\":true,\"interfaceType\":\"virtio-blk\",\"options\":{\"cache\":\"none\"}},"
    "{\"id\":\"data\",\"path\":\"/data.img\"}],"
    "\"network\":[{\"id\":\"eth0\",\"macAddress\":\"52:54:00:12:34:56\",\"tapDevice\":\"tap0\","
    "\"interfaceType\":\"virtio-net\",\"options\":{\"mtu\":\"1500\"},"
    "\"ipv4Config\":{\"address\":\"10.0.0.2\",\"netmask\":\"255.255.255.0\","
    "\"gateway\":\"10.0.0.1\",\"dnsServers\":[\"1.1.1.1\",\"8.8.8.8\"],\"dhcp\":true},"
    "\"ipv6Config\":{\"address\":\"fd00::2\",\"prefixLength\":64,\"gateway\":\"fd00::1\","
    "\"dnsServers\":[\"2606:4700:4700::1111\"],\"slaac\":true,\"privacyExtensions\":true,"
    "\"linkLocal\":\"fe80::1\"},\"mode\":\"NETWORK_MODE_DUAL_STACK\","
    "\"rxRateLimit\":{\"bandwidth\":\"1000000\",\"refillTime\":\"100\",\"burst\":\"-1\"},"
    "\"txRateLimit\":{\"bandwidth\":\"-9223372036854775808\"}}],"
    "\"console\":{\"enabled\":true,\"output\":\"/tmp/console.log\",\"consoleType\":\"serial\"},"
    "\"metadata\":{\"docker_image\":\"nginx:1.27\",\"exposed_ports\":\"8080/tcp,53/udp\","
    "\"empty\":\"\"},"
    "\"container\":{\"image\":\"nginx:1.27\",\"command\":[\"nginx\",\"-g\",\"daemon off;\"],"
    "\"env\":{\"A\":\"1\",\"QUOTE\\\"\":\"x\\\\y\",\"NL\":\"line1\\nline2\\r\\t\","
    "\"UNI\":\"\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80\",\"CTRL\":\"\\u0001\\u001f\\b\\f\","
    "\"\":\"empty key\",\"K=V,K2\":\"=,'\\\"\"},"
    "\"ports\":[{\"containerPort\":80,\"hostPort\":8080,\"protocol\":\"tcp\"},"
    "{\"containerPort\":53,\"protocol\":\"udp\"}],\"workingDir\":\"/srv\"}},"
    "\"customerId\":\"cust-9\"}";

static void test_round_trip_vm_config(void)
{
    struct berth_err err;
    CreateVmRequest *req;
    VmConfig *c;

    check_round_trip(CREATE_VM, full_create_vm);

    /* Spot checks that the decoded struct holds what the JSON says. */
    req = (CreateVmRequest *)decode(CREATE_VM, full_create_vm, &err);
    CHECK_MSG(req != NULL, "%s", err.msg);
    if (req == NULL)
        return;
    c = req->config;
    CHECK_STR(req->vm_id, "vm-1");
    CHECK(c != NULL && c->cpu != NULL && c->cpu->vcpu_count == 4);
    CHECK(c->cpu->topology != NULL && c->cpu->topology->threads_per_core == 2);
    CHECK(c->memory != NULL && c->memory->size_bytes == INT64_C(8589934592));
    CHECK(c->memory->max_size_bytes == INT64_MAX && c->memory->hotplug_enabled);
    CHECK(c->n_storage == 2 && c->storage[0]->read_only && !c->storage[1]->read_only);
    CHECK(c->n_network == 1 &&
          c->network[0]->mode == METAL__VMPROVISIONER__V1__NETWORK_MODE__NETWORK_MODE_DUAL_STACK);
    CHECK(c->network[0]->tx_rate_limit->bandwidth == INT64_MIN);
    CHECK(c->network[0]->ipv4_config->n_dns_servers == 2);
    CHECK_STR(c->network[0]->ipv4_config->dns_servers[1], "8.8.8.8");
    CHECK(c->n_metadata == 3);
    CHECK_STR(c->metadata[2]->key, "empty");
    CHECK_STR(c->metadata[2]->value, "");
    CHECK(c->container != NULL && c->container->n_env == 7);
    CHECK_STR(c->container->env[1]->key, "QUOTE\"");
    CHECK_STR(c->container->env[1]->value, "x\\y");
    CHECK_STR(c->container->env[4]->value, "\x01\x1f\b\f");
    CHECK_STR(c->container->env[5]->key, "");
    CHECK(c->container->n_ports == 2 && c->container->ports[1]->host_port == 0);
    protobuf_c_message_free_unpacked(&req->base, NULL);
}

/* Every Kitchen field set, extremes included. */
static const char full_kitchen[] =
    "{\"i32\":-2147483648,\"s32\":-7,\"sf32\":2147483647,"
    "\"i64\":\"-9223372036854775808\",\"s64\":\"-1\",\"sf64\":\"9223372036854775807\","
    "\"u32\":4294967295,\"f32\":1,\"u64\":\"18446744073709551615\",\"f64\":\"1\","
    "\"fl\":0.1,\"db\":-2.5e-300,\"b\":true,\"str\":\"x\",\"by\":\"AAEC/w==\","
    "\"en\":\"VM_STATE_PAUSED\",\"child\":{\"i32\":1,\"child\":{}},"
    "\"optI32\":0,\"optStr\":\"\",\"oneMsg\":{\"str\":\"in oneof\"},"
    "\"repBytes\":[\"\",\"AA==\",\"AAE=\",\"AAEC\",\"+/+/\"],"
    "\"repDouble\":[0,-0,\"NaN\",\"Infinity\",\"-Infinity\",1e+300,5e-324,0.1,"
    "1.7976931348623157e+308,123456.789],"
    "\"repFloat\":[0,3.4028235e+38,1.1754944e-38,1.5,16777216,\"NaN\"],"
    "\"repI64\":[\"0\",\"-1\",\"9007199254740993\"],\"repStr\":[\"\",\"a\"],"
    "\"repEnum\":[\"VM_STATE_UNSPECIFIED\",42,\"VM_STATE_SHUTDOWN\",-3],"
    "\"byId\":{\"-5\":\"neg\",\"0\":\"\",\"7\":\"seven\"},"
    "\"flags\":{\"true\":1,\"false\":0},"
    "\"nodes\":{\"a\":{},\"b\":{\"i32\":2,\"nodes\":{\"c\":{\"b\":true}}}},"
    "\"states\":{\"1\":\"VM_STATE_RUNNING\",\"4294967295\":7}}";

static void test_round_trip_kitchen(void)
{
    struct berth_err err;
    Kitchen *k;

    check_round_trip(KITCHEN, full_kitchen);

    k = (Kitchen *)decode(KITCHEN, full_kitchen, &err);
    CHECK_MSG(k != NULL, "%s", err.msg);
    if (k == NULL)
        return;
    CHECK(k->i32 == INT32_MIN && k->s32 == -7 && k->sf32 == INT32_MAX);
    CHECK(k->i64 == INT64_MIN && k->s64 == -1 && k->sf64 == INT64_MAX);
    CHECK(k->u32 == UINT32_MAX && k->f32 == 1 && k->u64 == UINT64_MAX && k->f64 == 1);
    CHECK(k->fl == 0.1f && k->db == -2.5e-300 && k->b);
    CHECK(k->by.len == 4 && k->by.data[3] == 0xff);
    CHECK(k->en == 3);
    CHECK(k->has_opt_i32 && k->opt_i32 == 0);
    CHECK(k->opt_str != NULL && k->opt_str[0] == '\0');
    CHECK(k->choice_case == 22 && k->one_msg != NULL);
    CHECK(k->n_rep_double == 10 && isnan(k->rep_double[2]) && signbit(k->rep_double[1]));
    CHECK(k->rep_double[6] == 5e-324 && k->rep_double[8] == DBL_MAX);
    CHECK(k->n_rep_float == 6 && k->rep_float[1] == FLT_MAX && k->rep_float[2] == FLT_MIN);
    CHECK(k->n_rep_i64 == 3 && k->rep_i64[2] == INT64_C(9007199254740993));
    CHECK(k->n_rep_enum == 4 && k->rep_enum[1] == 42 && k->rep_enum[3] == -3);
    CHECK(k->n_by_id == 3 && k->by_id[0]->key == -5);
    CHECK(k->n_flags == 2 && k->flags[0]->key && !k->flags[1]->key);
    CHECK(k->n_nodes == 2 && k->nodes[1]->value->n_nodes == 1);
    CHECK(k->n_states == 2 && k->states[1]->key == UINT32_MAX && k->states[1]->value == 7);
    protobuf_c_message_free_unpacked(&k->base, NULL);
}

/* Bytes of every length 0..7 and every byte value survive base64. */
static void test_bytes_round_trip(void)
{
    Kitchen k;
    ProtobufCBinaryData items[8];
    uint8_t data[256];
    struct berth_err err;
    Kitchen *back = NULL;
    char *json;

    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (uint8_t)(255 - i);
    kitchen_init(&k.base);
    for (size_t i = 0; i < 7; i++) {
        items[i].len = i;
        items[i].data = data + 3 * i;
    }
    items[7].len = sizeof(data);
    items[7].data = data;
    k.n_rep_bytes = 8;
    k.rep_bytes = items;
    json = encode(&k.base);
    CHECK(json != NULL);
    if (json != NULL)
        back = (Kitchen *)decode(KITCHEN, json, &err);
    CHECK(back != NULL && same_packed(&k.base, &back->base));
    protobuf_c_message_free_unpacked(back ? &back->base : NULL, NULL);
    free(json);
}

/* ------------------------------------------------------------------------
 * Decoding: what is accepted, shown by the canonical re-encoding
 * ------------------------------------------------------------------------ */

static void test_decode_accepts(void)
{
    static const struct {
        const char *what;
        const ProtobufCMessageDescriptor *desc;
        const char *in, *out;
    } rows[] = {
        {"empty object", CREATE_VM, "{}", "{}"},
        {"whitespace around", CREATE_VM, " \r\n\t{ } \n", "{}"},
        {"camelCase name", CREATE_VM, "{\"vmId\":\"a\"}", "{\"vmId\":\"a\"}"},
        {"proto name", CREATE_VM, "{\"vm_id\":\"a\",\"customer_id\":\"c\"}",
         "{\"vmId\":\"a\",\"customerId\":\"c\"}"},
        {"nested proto names", CREATE_VM,
         "{\"config\":{\"cpu\":{\"vcpu_count\":2,\"max_vcpu_count\":4}}}",
         "{\"config\":{\"cpu\":{\"vcpuCount\":2,\"maxVcpuCount\":4}}}"},
        {"unknown keys ignored whatever their value", CREATE_VM,
         "{\"zz\":{\"a\":[1,null,{\"b\":\"c\"}]},\"vmId\":\"a\",\"x\":null,\"y\":[[]],"
         "\"VmId\":5,\"vm_Id\":true,\"\":1}",
         "{\"vmId\":\"a\"}"},
        {"null means unset", CREATE_VM, "{\"vmId\":null,\"config\":null}", "{}"},
        {"null for a list or map", CREATE_VM, "{\"config\":{\"storage\":null,\"metadata\":null}}",
         "{\"config\":{}}"},
        {"set but empty message", CREATE_VM, "{\"config\":{}}", "{\"config\":{}}"},
        {"empty list and map are defaults", CREATE_VM,
         "{\"config\":{\"storage\":[],\"metadata\":{}}}", "{\"config\":{}}"},
        {"defaults given explicitly are left out", CREATE_VM,
         "{\"vmId\":\"\",\"config\":{\"cpu\":{\"vcpuCount\":0},\"memory\":{\"sizeBytes\":\"0\","
         "\"hotplugEnabled\":false}}}",
         "{\"config\":{\"cpu\":{},\"memory\":{}}}"},
        {"int32 as string", SHUTDOWN_VM, "{\"timeoutSeconds\":\"30\"}", "{\"timeoutSeconds\":30}"},
        {"int32 exponent", SHUTDOWN_VM, "{\"timeoutSeconds\":1e2}", "{\"timeoutSeconds\":100}"},
        {"int32 integral fraction", SHUTDOWN_VM, "{\"timeoutSeconds\":1.0}",
         "{\"timeoutSeconds\":1}"},
        {"int32 exponent in a string", SHUTDOWN_VM, "{\"timeoutSeconds\":\"1e2\"}",
         "{\"timeoutSeconds\":100}"},
        {"int32 fraction that cancels", SHUTDOWN_VM, "{\"timeoutSeconds\":\"150e-1\"}",
         "{\"timeoutSeconds\":15}"},
        {"int32 negative extreme", SHUTDOWN_VM, "{\"timeoutSeconds\":-2147483648}",
         "{\"timeoutSeconds\":-2147483648}"},
        {"int32 negative zero", SHUTDOWN_VM, "{\"timeoutSeconds\":\"-0\"}", "{}"},
        {"int64 as string", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":\"9223372036854775807\"}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"9223372036854775807\"}}}"},
        {"int64 as number", CREATE_VM, "{\"config\":{\"memory\":{\"sizeBytes\":1073741824}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"1073741824\"}}}"},
        {"int64 largest exact number", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":-9007199254740991}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"-9007199254740991\"}}}"},
        {"int64 minimum as string", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":\"-9223372036854775808\"}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"-9223372036854775808\"}}}"},
        {"uint32 maximum", DEPLOYMENT, "{\"replicas\":4294967295}", "{\"replicas\":4294967295}"},
        {"int64 number beyond 2^53, exactly", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":9007199254740993}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"9007199254740993\"}}}"},
        {"int64 extremes as numbers", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":-9223372036854775808,"
         "\"maxSizeBytes\":9223372036854775807}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"-9223372036854775808\","
         "\"maxSizeBytes\":\"9223372036854775807\"}}}"},
        {"int64 number in exponent form beyond 2^53", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":1.2345678901234567e18}}}",
         "{\"config\":{\"memory\":{\"sizeBytes\":\"1234567890123456700\"}}}"},
        {"uint64 maximum as a number", DEPLOYMENT, "{\"memorySizeMib\":18446744073709551615}",
         "{\"memorySizeMib\":\"18446744073709551615\"}"},
        {"numbers inside strings and unknown keys do not shift the literals", DEPLOYMENT,
         "{\"x\":\"-1 2e5 \\\" 7\",\"y\":[1,-2.5e3,{\"z\":3}],\"memorySizeMib\":9007199254740995}",
         "{\"memorySizeMib\":\"9007199254740995\"}"},
        {"uint64 maximum", DEPLOYMENT, "{\"memory_size_mib\":\"18446744073709551615\"}",
         "{\"memorySizeMib\":\"18446744073709551615\"}"},
        {"enum by name", CREATE_VM_RESP, "{\"state\":\"VM_STATE_RUNNING\"}",
         "{\"state\":\"VM_STATE_RUNNING\"}"},
        {"enum by number", CREATE_VM_RESP, "{\"state\":2}", "{\"state\":\"VM_STATE_RUNNING\"}"},
        {"enum unknown number kept", CREATE_VM_RESP, "{\"state\":42}", "{\"state\":42}"},
        {"enum unknown name ignored", CREATE_VM_RESP, "{\"state\":\"VM_STATE_BOGUS\"}", "{}"},
        {"enum number as string is a name", CREATE_VM_RESP, "{\"state\":\"2\"}", "{}"},
        {"repeated enum: unknown names dropped", LIST_VMS,
         "{\"stateFilter\":[\"VM_STATE_RUNNING\",\"NOPE\",3,\"VM_STATE_CREATED\",99]}",
         "{\"stateFilter\":[\"VM_STATE_RUNNING\",\"VM_STATE_PAUSED\",\"VM_STATE_CREATED\",99]}"},
        {"repeated enum: all unknown", LIST_VMS, "{\"state_filter\":[\"X\",\"Y\"]}", "{}"},
        {"map keeps order and empty values", CREATE_VM,
         "{\"config\":{\"metadata\":{\"b\":\"2\",\"a\":\"\"}}}",
         "{\"config\":{\"metadata\":{\"b\":\"2\",\"a\":\"\"}}}"},
        {"map with odd characters", CONTAINER,
         "{\"env\":{\"K=1\":\"a\\\"b\\\\c\\nd\\u0001\\u00e9\\u2603\\ud83d\\ude00\",\"\":\"x\","
         "\"sp ace\":\"/\\/\"}}",
         "{\"env\":{\"K=1\":\"a\\\"b\\\\c\\nd\\u0001\xc3\xa9\xe2\x98\x83\xf0\x9f\x98\x80\","
         "\"\":\"x\",\"sp ace\":\"//\"}}"},
        {"bytes standard padded", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"aGVsbG8/Pz4+\"}",
         "{\"encryptedSecretsBlob\":\"aGVsbG8/Pz4+\"}"},
        {"bytes URL-safe", DEPLOYMENT, "{\"encrypted_secrets_blob\":\"aGVsbG8_Pz4-\"}",
         "{\"encryptedSecretsBlob\":\"aGVsbG8/Pz4+\"}"},
        {"bytes unpadded", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"aGk\"}",
         "{\"encryptedSecretsBlob\":\"aGk=\"}"},
        {"bytes unpadded two", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"aQ\"}",
         "{\"encryptedSecretsBlob\":\"aQ==\"}"},
        {"bytes URL-safe unpadded", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"-_8\"}",
         "{\"encryptedSecretsBlob\":\"+/8=\"}"},
        {"bytes empty", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"\"}", "{}"},
        {"bool true, false left out", DELETE_VM, "{\"force\":true,\"vmId\":\"v\"}",
         "{\"vmId\":\"v\",\"force\":true}"},
        {"double NaN", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":\"NaN\"}}",
         "{\"metrics\":{\"cpuUsagePercent\":\"NaN\"}}"},
        {"double Infinity", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":\"Infinity\"}}",
         "{\"metrics\":{\"cpuUsagePercent\":\"Infinity\"}}"},
        {"double -Infinity", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":\"-Infinity\"}}",
         "{\"metrics\":{\"cpuUsagePercent\":\"-Infinity\"}}"},
        {"double numeric string", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":\"12.5\"}}",
         "{\"metrics\":{\"cpuUsagePercent\":12.5}}"},
        {"double exponent", VM_INFO_RESP, "{\"metrics\":{\"cpu_usage_percent\":1e2}}",
         "{\"metrics\":{\"cpuUsagePercent\":100}}"},
        {"repeated messages", LIST_VMS_RESP,
         "{\"vms\":[{\"vm_id\":\"a\",\"state\":\"VM_STATE_CREATED\"},{}],\"totalCount\":\"2\"}",
         "{\"vms\":[{\"vmId\":\"a\",\"state\":\"VM_STATE_CREATED\"},{}],\"totalCount\":2}"},
        {"oneof string set to default", KITCHEN, "{\"oneStr\":\"\"}", "{\"oneStr\":\"\"}"},
        {"oneof int64 set to default", KITCHEN, "{\"one_i64\":0}", "{\"oneI64\":\"0\"}"},
        {"oneof null leaves it free", KITCHEN, "{\"oneStr\":null,\"oneI64\":\"5\"}",
         "{\"oneI64\":\"5\"}"},
        {"proto3 optional set to default", KITCHEN, "{\"opt_i32\":0,\"optStr\":\"\"}",
         "{\"optI32\":0,\"optStr\":\"\"}"},
        {"proto3 optional null", KITCHEN, "{\"optI32\":null}", "{}"},
        {"int map keys parsed", KITCHEN, "{\"byId\":{\"-5\":\"a\",\"007\":\"b\",\"1e1\":\"c\"}}",
         "{\"byId\":{\"-5\":\"a\",\"7\":\"b\",\"10\":\"c\"}}"},
        {"map key given twice: the last wins", CREATE_VM,
         "{\"config\":{\"metadata\":{\"a\":\"1\",\"b\":\"\",\"a\":\"2\"}}}",
         "{\"config\":{\"metadata\":{\"b\":\"\",\"a\":\"2\"}}}"},
        {"map key three times", CONTAINER, "{\"env\":{\"K\":\"1\",\"K\":\"2\",\"K\":\"3\"}}",
         "{\"env\":{\"K\":\"3\"}}"},
        {"int map key in two spellings: the last wins", KITCHEN,
         "{\"byId\":{\"1\":\"a\",\"2\":\"x\",\"01\":\"b\"}}",
         "{\"byId\":{\"2\":\"x\",\"1\":\"b\"}}"},
        {"bool map key twice", KITCHEN, "{\"flags\":{\"true\":1,\"true\":2}}",
         "{\"flags\":{\"true\":2}}"},
        {"map of messages key twice", KITCHEN, "{\"nodes\":{\"x\":{\"i32\":1},\"x\":{}}}",
         "{\"nodes\":{\"x\":{}}}"},
        {"duplicate keys in a nested map", KITCHEN,
         "{\"child\":{\"byId\":{\"-1\":\"a\",\"-1\":\"b\"}}}",
         "{\"child\":{\"byId\":{\"-1\":\"b\"}}}"},
        {"zero, minus zero and fractions are no leading zeros", KITCHEN,
         "{\"i32\":0,\"s32\":-0,\"db\":0.5,\"fl\":\"-0.25\",\"i64\":\"0\"}",
         "{\"fl\":-0.25,\"db\":0.5}"},
        {"surrogate pair in the middle", CREATE_VM, "{\"vmId\":\"a\\uD83D\\uDE00b\\u00e9\"}",
         "{\"vmId\":\"a\xf0\x9f\x98\x80"
         "b\xc3\xa9\"}"},
        {"bool map keys", KITCHEN, "{\"flags\":{\"false\":0,\"true\":-1}}",
         "{\"flags\":{\"false\":0,\"true\":-1}}"},
        {"map of messages", KITCHEN, "{\"nodes\":{\"x\":{},\"y\":{\"child\":{}}}}",
         "{\"nodes\":{\"x\":{},\"y\":{\"child\":{}}}}"},
        {"map enum value: unknown name drops the entry", KITCHEN,
         "{\"states\":{\"1\":\"VM_STATE_RUNNING\",\"2\":\"NOPE\",\"3\":9}}",
         "{\"states\":{\"1\":\"VM_STATE_RUNNING\",\"3\":9}}"},
        {"all 64-bit kinds", KITCHEN,
         "{\"i64\":-1,\"s64\":\"-2\",\"sf64\":3,\"u64\":4,\"f64\":\"5\"}",
         "{\"i64\":\"-1\",\"s64\":\"-2\",\"sf64\":\"3\",\"u64\":\"4\",\"f64\":\"5\"}"},
        {"all 32-bit kinds", KITCHEN,
         "{\"i32\":\"-1\",\"s32\":-2,\"sf32\":\"-3\",\"u32\":\"4\",\"f32\":5}",
         "{\"i32\":-1,\"s32\":-2,\"sf32\":-3,\"u32\":4,\"f32\":5}"},
        {"float limits", KITCHEN, "{\"fl\":\"3.4028235e38\",\"repFloat\":[-3.4028235e38,1e-46]}",
         "{\"fl\":3.4028235e+38,\"repFloat\":[-3.4028235e+38,0]}"},
    };
    struct berth_err err;

    for (size_t i = 0; i < ROWS(rows); i++) {
        struct arena *arena = arena_new();
        char *sys = canonical(rows[i].desc, rows[i].in, NULL, &err);
        CHECK_MSG(sys != NULL && strcmp(sys, rows[i].out) == 0, "%s: got %s (%s)", rows[i].what,
                  sys ? sys : "(null)", err.msg);
        if (arena != NULL) {
            char *ar = canonical(rows[i].desc, rows[i].in, arena_allocator(arena), &err);
            CHECK_MSG(ar != NULL && sys != NULL && strcmp(ar, sys) == 0, "%s (arena)",
                      rows[i].what);
            free(ar);
        }
        free(sys);
        arena_free(arena);
    }
}

/* ------------------------------------------------------------------------
 * Decoding: what is refused, with the exact message
 * ------------------------------------------------------------------------ */

#define INVALID BERTH_INVALID_ARGUMENT

static void test_decode_rejects(void)
{
    /* msg: the exact message, or a prefix when it ends in '*'. len 0: strlen. */
    static const struct {
        const char *what;
        const ProtobufCMessageDescriptor *desc;
        const char *in;
        size_t len;
        const char *msg;
    } rows[] = {
        {"empty body", CREATE_VM, "", 0, "empty JSON body; send {} for an empty message"},
        {"whitespace body", CREATE_VM, " \r\n\t ", 0,
         "empty JSON body; send {} for an empty message"},
        {"malformed", CREATE_VM, "{", 0, "malformed JSON at byte*"},
        {"malformed member", CREATE_VM, "{\"vmId\":}", 0, "malformed JSON at byte*"},
        {"single quotes", CREATE_VM, "{'vmId':'a'}", 0, "malformed JSON at byte*"},
        {"trailing comma", CREATE_VM, "{\"vmId\":\"a\",}", 0, "malformed JSON at byte*"},
        {"trailing garbage", CREATE_VM, "{} x", 0,
         "malformed JSON at byte 3: data after the value"},
        {"two objects", CREATE_VM, "{}{}", 0, "malformed JSON at byte 2: data after the value"},
        {"NUL after the object", CREATE_VM, "{}\0", 3,
         "malformed JSON at byte 2: unescaped control character"},
        {"raw control character in a string", CREATE_VM, "{\"vmId\":\"a\x01\"}", 0,
         "malformed JSON at byte 10: unescaped control character"},
        {"raw newline in a string", CREATE_VM, "{\"vmId\":\"a\nb\"}", 0,
         "malformed JSON at byte 10: unescaped control character"},
        {"vertical tab as whitespace", CREATE_VM, "{\v}", 0,
         "malformed JSON at byte 1: unescaped control character"},
        {"escaped NUL", CREATE_VM, "{\"vmId\":\"a\\u0000b\"}", 0,
         "unsupported JSON at byte 10: strings may not hold \\u0000"},
        {"lone high surrogate", CREATE_VM, "{\"vmId\":\"\\ud800\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: a lone UTF-16 surrogate"},
        {"lone low surrogate", CREATE_VM, "{\"vmId\":\"a\\udc00b\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: a lone UTF-16 surrogate"},
        {"high surrogate before a non-surrogate", CREATE_VM, "{\"vmId\":\"\\ud800\\u0041\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: a lone UTF-16 surrogate"},
        {"two high surrogates", CREATE_VM, "{\"vmId\":\"\\ud800\\ud800\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: a lone UTF-16 surrogate"},
        {"high surrogate before text", CREATE_VM, "{\"vmId\":\"\\udbffxyzxyz\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: a lone UTF-16 surrogate"},
        {"\\u escape not hex", CREATE_VM, "{\"vmId\":\"a\\uZZZZb\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: expected 4 hex digits"},
        {"\\u escape short", CREATE_VM, "{\"vmId\":\"\\u12\"}", 0,
         "invalid value for field 'vmId': invalid \\u escape: expected 4 hex digits"},
        {"\\u escape at the end of the body", CREATE_VM, "{\"vmId\":\"\\u", 0,
         "malformed JSON at byte*"},
        {"bad \\u escape in a nested list", CREATE_VM,
         "{\"config\":{\"container\":{\"command\":[\"a\",\"\\u00g1\"]}}}", 0,
         "invalid value for field 'config.container.command[1]': invalid \\u escape: expected "
         "4 hex digits"},
        {"bad \\u escape in a map key", CREATE_VM, "{\"config\":{\"metadata\":{\"k\\u12\":\"v\"}}}",
         0,
         "invalid value for field 'config.metadata[\"k?u12\"]': invalid \\u escape: expected 4 "
         "hex digits"},
        {"bad \\u escape in a map value", CREATE_VM,
         "{\"config\":{\"metadata\":{\"k\":\"\\udfff\"}}}", 0,
         "invalid value for field 'config.metadata[\"k\"]': invalid \\u escape: a lone UTF-16 "
         "surrogate"},
        {"bad \\u escape in an enum name", CREATE_VM_RESP, "{\"state\":\"\\uD800\"}", 0,
         "invalid value for field 'state': invalid \\u escape: a lone UTF-16 surrogate"},
        {"bad \\u escape in an unknown field", CREATE_VM, "{\"zz\":[\"\\u00\"],\"vmId\":\"a\"}", 0,
         "malformed JSON at byte 8: invalid \\u escape"},
        {"bad \\u escape in a field name", CREATE_VM, "{\"vm\\uIdxx\":\"a\"}", 0,
         "malformed JSON at byte 4: invalid \\u escape"},
        {"leading zero", SHUTDOWN_VM, "{\"timeoutSeconds\":01}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '01'"},
        {"negative leading zero", SHUTDOWN_VM, "{\"timeoutSeconds\":-01}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '-01'"},
        {"leading zeros", SHUTDOWN_VM, "{\"timeoutSeconds\":000}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '000'"},
        {"quoted leading zero", SHUTDOWN_VM, "{\"timeoutSeconds\":\"01\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '01'"},
        {"quoted negative leading zero", KITCHEN, "{\"i64\":\"-01\"}", 0,
         "invalid value for field 'i64': expected an integer, got '-01'"},
        {"enum number with a leading zero", CREATE_VM_RESP, "{\"state\":02}", 0,
         "invalid value for field 'state': expected an integer, got '02'"},
        {"double with a leading zero", KITCHEN, "{\"db\":01.5}", 0,
         "invalid value for field 'db': expected a number, got '01.5'"},
        {"quoted double with a leading zero", KITCHEN, "{\"db\":\"-00.5\"}", 0,
         "invalid value for field 'db': expected a number, got '-00.5'"},
        {"NaN literal", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":NaN}}", 0,
         "malformed JSON at byte*"},
        {"top-level array", CREATE_VM, "[]", 0, "expected a JSON object, got an array"},
        {"top-level null", CREATE_VM, "null", 0, "expected a JSON object, got null"},
        {"top-level string", CREATE_VM, "\"x\"", 0, "expected a JSON object, got 'x'"},
        {"top-level number", CREATE_VM, " 5 ", 0, "expected a JSON object, got 5"},
        {"same field twice", CREATE_VM, "{\"vmId\":\"a\",\"vmId\":\"b\"}", 0,
         "field 'vmId' given more than once"},
        {"same field in both spellings", CREATE_VM, "{\"vm_id\":\"a\",\"vmId\":\"b\"}", 0,
         "field 'vmId' given more than once"},
        {"same field twice, first null", CREATE_VM, "{\"vmId\":null,\"vm_id\":\"b\"}", 0,
         "field 'vmId' given more than once"},
        {"nested duplicate", CREATE_VM, "{\"config\":{\"cpu\":{\"vcpu_count\":1,\"vcpuCount\":1}}}",
         0, "field 'config.cpu.vcpuCount' given more than once"},
        {"string from number", CREATE_VM, "{\"vmId\":5}", 0,
         "invalid value for field 'vmId': expected a string, got 5"},
        {"string from object", CREATE_VM, "{\"vmId\":{}}", 0,
         "invalid value for field 'vmId': expected a string, got an object"},
        {"string invalid UTF-8", CREATE_VM, "{\"vmId\":\"a\xff\"}", 0,
         "invalid value for field 'vmId': expected valid UTF-8"},
        {"string overlong UTF-8", CREATE_VM, "{\"vmId\":\"\xc0\xaf\"}", 0,
         "invalid value for field 'vmId': expected valid UTF-8"},
        {"bool from string", DELETE_VM, "{\"force\":\"true\"}", 0,
         "invalid value for field 'force': expected true or false, got 'true'"},
        {"bool from number", DELETE_VM, "{\"force\":1}", 0,
         "invalid value for field 'force': expected true or false, got 1"},
        {"message from array", CREATE_VM, "{\"config\":[]}", 0,
         "invalid value for field 'config': expected an object, got an array"},
        {"message from string", CREATE_VM, "{\"config\":\"x\"}", 0,
         "invalid value for field 'config': expected an object, got 'x'"},
        {"list from string", LIST_VMS, "{\"stateFilter\":\"VM_STATE_RUNNING\"}", 0,
         "invalid value for field 'stateFilter': expected an array, got 'VM_STATE_RUNNING'"},
        {"map from array", CREATE_VM, "{\"config\":{\"metadata\":[]}}", 0,
         "invalid value for field 'config.metadata': expected an object, got an array"},
        {"enum from bool", CREATE_VM_RESP, "{\"state\":true}", 0,
         "invalid value for field 'state': expected an enum name or number, got true"},
        {"enum from fraction", CREATE_VM_RESP, "{\"state\":1.5}", 0,
         "invalid value for field 'state': expected an integer, got 1.5"},
        {"enum out of int32", CREATE_VM_RESP, "{\"state\":2147483648}", 0,
         "invalid value for field 'state': value out of range for int32"},
        {"int32 letters", CREATE_VM, "{\"config\":{\"cpu\":{\"vcpuCount\":\"abc\"}}}", 0,
         "invalid value for field 'config.cpu.vcpuCount': expected an integer, got 'abc'"},
        {"int32 fraction", SHUTDOWN_VM, "{\"timeoutSeconds\":1.5}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got 1.5"},
        {"int32 fraction in a string", SHUTDOWN_VM, "{\"timeoutSeconds\":\"1.5\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '1.5'"},
        {"int32 empty string", SHUTDOWN_VM, "{\"timeoutSeconds\":\"\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got ''"},
        {"int32 leading space", SHUTDOWN_VM, "{\"timeoutSeconds\":\" 5\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got ' 5'"},
        {"int32 plus sign", SHUTDOWN_VM, "{\"timeoutSeconds\":\"+5\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '+5'"},
        {"int32 hex", SHUTDOWN_VM, "{\"timeoutSeconds\":\"0x10\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got '0x10'"},
        {"int32 from bool", SHUTDOWN_VM, "{\"timeoutSeconds\":false}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got false"},
        {"int32 from array", SHUTDOWN_VM, "{\"timeoutSeconds\":[1]}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got an array"},
        {"int32 too big", SHUTDOWN_VM, "{\"timeoutSeconds\":2147483648}", 0,
         "invalid value for field 'timeoutSeconds': value out of range for int32"},
        {"int32 too small in a string", SHUTDOWN_VM, "{\"timeoutSeconds\":\"-2147483649\"}", 0,
         "invalid value for field 'timeoutSeconds': value out of range for int32"},
        {"int32 huge exponent", SHUTDOWN_VM, "{\"timeoutSeconds\":\"1e400\"}", 0,
         "invalid value for field 'timeoutSeconds': value out of range for int32"},
        {"int32 huge number", SHUTDOWN_VM, "{\"timeoutSeconds\":1e400}", 0,
         "invalid value for field 'timeoutSeconds': value out of range for int32"},
        {"int32 long echo is cut", SHUTDOWN_VM,
         "{\"timeoutSeconds\":\"0123456789abcdefghijklmnopqrstuvwxyz\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got "
         "'0123456789abcdefghijklmnopqrstuv...'"},
        {"int64 number just past the maximum", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":9223372036854775808}}}", 0,
         "invalid value for field 'config.memory.sizeBytes': value out of range for int64"},
        {"int64 number with a fraction beyond 2^53", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":9007199254740993.5}}}", 0,
         "invalid value for field 'config.memory.sizeBytes': expected an integer, got "
         "9.0072e+15"},
        {"int64 string out of range", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":\"9223372036854775808\"}}}", 0,
         "invalid value for field 'config.memory.sizeBytes': value out of range for int64"},
        {"int64 string below range", CREATE_VM,
         "{\"config\":{\"memory\":{\"sizeBytes\":\"-9223372036854775809\"}}}", 0,
         "invalid value for field 'config.memory.sizeBytes': value out of range for int64"},
        {"uint32 negative", CREATE_DEPLOYMENT, "{\"deployment\":{\"replicas\":-1}}", 0,
         "invalid value for field 'deployment.replicas': expected a non-negative integer "
         "for uint32"},
        {"uint32 negative string", CREATE_DEPLOYMENT, "{\"deployment\":{\"replicas\":\"-3\"}}", 0,
         "invalid value for field 'deployment.replicas': expected a non-negative integer "
         "for uint32"},
        {"uint32 out of range", CREATE_DEPLOYMENT, "{\"deployment\":{\"replicas\":4294967296}}", 0,
         "invalid value for field 'deployment.replicas': value out of range for uint32"},
        {"uint64 negative", DEPLOYMENT, "{\"memorySizeMib\":\"-1\"}", 0,
         "invalid value for field 'memorySizeMib': expected a non-negative integer for uint64"},
        {"uint64 out of range", DEPLOYMENT, "{\"memory_size_mib\":\"18446744073709551616\"}", 0,
         "invalid value for field 'memorySizeMib': value out of range for uint64"},
        {"uint64 number just past the maximum", DEPLOYMENT,
         "{\"memorySizeMib\":18446744073709551616}", 0,
         "invalid value for field 'memorySizeMib': value out of range for uint64"},
        {"bytes invalid character", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"a!bc\"}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected standard or URL-safe base64"},
        {"bytes mixed alphabets", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"ab+_\"}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected standard or URL-safe base64"},
        {"bytes bad padding", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"aGk==\"}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected standard or URL-safe base64"},
        {"bytes too much padding", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"a===\"}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected standard or URL-safe base64"},
        {"bytes impossible length", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"abcde\"}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected standard or URL-safe base64"},
        {"bytes padding inside", DEPLOYMENT, "{\"encryptedSecretsBlob\":\"aG=k\"}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected standard or URL-safe base64"},
        {"bytes from number", DEPLOYMENT, "{\"encryptedSecretsBlob\":5}", 0,
         "invalid value for field 'encryptedSecretsBlob': expected a base64 string, got 5"},
        {"double from word", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":\"fast\"}}", 0,
         "invalid value for field 'metrics.cpuUsagePercent': expected a number, got 'fast'"},
        {"double lowercase nan", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":\"nan\"}}", 0,
         "invalid value for field 'metrics.cpuUsagePercent': expected a number, got 'nan'"},
        {"double from bool", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":true}}", 0,
         "invalid value for field 'metrics.cpuUsagePercent': expected a number, got true"},
        {"double overflow", VM_INFO_RESP, "{\"metrics\":{\"cpuUsagePercent\":1e999}}", 0,
         "invalid value for field 'metrics.cpuUsagePercent': value out of range for double"},
        {"double overflow in a string", VM_INFO_RESP,
         "{\"metrics\":{\"cpuUsagePercent\":\"-1e999\"}}", 0,
         "invalid value for field 'metrics.cpuUsagePercent': value out of range for double"},
        {"float overflow", KITCHEN, "{\"fl\":3.5e38}", 0,
         "invalid value for field 'fl': value out of range for float"},
        {"null in a list", LIST_VMS, "{\"stateFilter\":[\"VM_STATE_RUNNING\",null]}", 0,
         "invalid value for field 'stateFilter[1]': null is not allowed in a list"},
        {"null as a map value", CREATE_VM, "{\"config\":{\"metadata\":{\"k\":null}}}", 0,
         "invalid value for field 'config.metadata[\"k\"]': null is not allowed as a map value"},
        {"map value of wrong type", CREATE_VM, "{\"config\":{\"metadata\":{\"k\":1}}}", 0,
         "invalid value for field 'config.metadata[\"k\"]': expected a string, got 1"},
        {"map key echo is cut", CREATE_VM,
         "{\"config\":{\"metadata\":{\"0123456789abcdefghijklmnopqrstuvwxyz\":3}}}", 0,
         "invalid value for field 'config.metadata[\"0123456789abcdefghijklmnopqrstuv...\"]': "
         "expected a string, got 3"},
        {"list element path", LIST_VMS_RESP, "{\"vms\":[{},{},{\"vcpuCount\":\"x\"}]}", 0,
         "invalid value for field 'vms[2].vcpuCount': expected an integer, got 'x'"},
        {"nested list element path", CREATE_VM,
         "{\"config\":{\"storage\":[{\"read_only\":\"no\"}]}}", 0,
         "invalid value for field 'config.storage[0].readOnly': expected true or false, "
         "got 'no'"},
        {"map value message path", KITCHEN, "{\"nodes\":{\"k\":{\"child\":{\"i32\":\"z\"}}}}", 0,
         "invalid value for field 'nodes[\"k\"].child.i32': expected an integer, got 'z'"},
        {"int map key not a number", KITCHEN, "{\"byId\":{\"x\":\"a\"}}", 0,
         "invalid value for field 'byId[\"x\"]': expected an integer, got 'x'"},
        {"uint32 map key negative", KITCHEN, "{\"states\":{\"-1\":1}}", 0,
         "invalid value for field 'states[\"-1\"]': expected a non-negative integer for uint32"},
        {"bool map key", KITCHEN, "{\"flags\":{\"yes\":1}}", 0,
         "invalid value for field 'flags[\"yes\"]': expected a map key of true or false"},
        {"string map key invalid UTF-8", CONTAINER, "{\"env\":{\"\xe2\x82\":\"v\"}}", 0,
         "invalid value for field 'env[\"??\"]': expected a map key in valid UTF-8"},
        {"echo of a string cut inside a UTF-8 sequence", SHUTDOWN_VM,
         "{\"timeoutSeconds\":\"0123456789abcdefghijklmnopqrstu\xc3\xa9\"}", 0,
         "invalid value for field 'timeoutSeconds': expected an integer, got "
         "'0123456789abcdefghijklmnopqrstu?...'"},
        {"oneof given twice", KITCHEN, "{\"oneStr\":\"a\",\"oneI64\":\"1\"}", 0,
         "invalid value for field 'oneI64': its oneof is already set by 'oneStr'"},
        {"oneof message then scalar", KITCHEN, "{\"one_msg\":{},\"one_str\":\"\"}", 0,
         "invalid value for field 'oneStr': its oneof is already set by 'oneMsg'"},
        {"error after allocations", KITCHEN,
         "{\"str\":\"s\",\"repStr\":[\"a\",\"b\"],\"nodes\":{\"a\":{\"str\":\"x\"}},"
         "\"oneMsg\":{\"repBytes\":[\"AA==\"]},\"byId\":{\"1\":\"one\"},\"child\":{\"child\":"
         "{\"repStr\":[\"x\",5]}}}",
         0, "invalid value for field 'child.child.repStr[1]': expected a string, got 5"},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        size_t len = rows[i].len ? rows[i].len : strlen(rows[i].in);
        size_t want = strlen(rows[i].msg);
        int prefix = want > 0 && rows[i].msg[want - 1] == '*';

        for (int use_arena = 0; use_arena < 2; use_arena++) {
            struct arena *arena = use_arena ? arena_new() : NULL;
            ProtobufCAllocator *alloc = arena ? arena_allocator(arena) : NULL;
            ProtobufCMessage sentinel, *out = &sentinel;
            struct berth_err err;
            int rc;

            berth_err_clear(&err);
            rc = json_codec_decode(rows[i].desc, rows[i].in, len, alloc, &out, &err);
            CHECK_MSG(rc == -1 && out == &sentinel, "%s: accepted", rows[i].what);
            CHECK_MSG(err.code == INVALID, "%s: code %d", rows[i].what, (int)err.code);
            CHECK_MSG(prefix ? strncmp(err.msg, rows[i].msg, want - 1) == 0
                             : strcmp(err.msg, rows[i].msg) == 0,
                      "%s: got \"%s\"", rows[i].what, err.msg);
            if (rc == 0 && out != &sentinel)
                protobuf_c_message_free_unpacked(out, alloc);
            arena_free(arena);
        }
    }
}

/* ------------------------------------------------------------------------
 * Nesting
 * ------------------------------------------------------------------------ */

/* {"child":{"child":...{}...}} holding `levels` messages in all. */
static char *nested_children(size_t levels, const char *key)
{
    struct buf b;
    int ok = 1;

    buf_init(&b, (size_t)1 << 20);
    for (size_t i = 1; i < levels && ok; i++)
        ok = buf_printf(&b, NULL, "{\"%s\":", key) == 0;
    ok = ok && buf_appends(&b, "{}", NULL) == 0;
    for (size_t i = 1; i < levels && ok; i++)
        ok = buf_appends(&b, "}", NULL) == 0;
    if (!ok) {
        buf_release(&b);
        return NULL;
    }
    return buf_detach(&b);
}

/* Kitchen recurses through `child`, so the limit itself is reachable:
 * JSON_CODEC_MAX_DEPTH levels pass, one more is refused. (No message in
 * proto/ recurses: there deep JSON can only sit in unknown keys, which are
 * skipped, or exceed cJSON's own limit, which fails as malformed.) */
static void test_nesting_limit(void)
{
    static const char limit_msg[] = "message nesting deeper than 64 levels at field 'child.child.";
    struct berth_err err;
    ProtobufCMessage *msg;
    char *ok = nested_children(JSON_CODEC_MAX_DEPTH, "child");
    char *deep = nested_children(JSON_CODEC_MAX_DEPTH + 1, "child");
    char *via_oneof = nested_children(JSON_CODEC_MAX_DEPTH + 1, "oneMsg");
    char *out = NULL;

    CHECK(JSON_CODEC_MAX_DEPTH == 64);
    msg = ok ? decode(KITCHEN, ok, &err) : NULL;
    CHECK_MSG(msg != NULL, "%s", err.msg);
    if (msg != NULL) {
        out = encode(msg);
        CHECK_STR(out, ok); /* the encoder takes the deepest message the decoder makes */
        protobuf_c_message_free_unpacked(msg, NULL);
    }
    msg = deep ? decode(KITCHEN, deep, &err) : NULL;
    CHECK(msg == NULL && err.code == INVALID);
    CHECK_MSG(strncmp(err.msg, limit_msg, sizeof(limit_msg) - 1) == 0, "%s", err.msg);
    msg = via_oneof ? decode(KITCHEN, via_oneof, &err) : NULL;
    CHECK(msg == NULL && err.code == INVALID);
    CHECK(strncmp(err.msg, "message nesting deeper than 64 levels at field 'oneMsg.", 55) == 0);
    free(ok);
    free(deep);
    free(via_oneof);
    free(out);
}

/* Deep JSON under an unknown key is skipped; past cJSON's own nesting
 * limit (1000) the body is malformed. */
static void test_deep_unknown_json(void)
{
    struct berth_err err;
    struct buf b;
    ProtobufCMessage *msg;
    int ok = 1;

    for (size_t depth = 500; depth <= 1500; depth += 1000) {
        buf_init(&b, (size_t)1 << 20);
        ok = buf_appends(&b, "{\"unknown\":", NULL) == 0;
        for (size_t i = 0; i < depth && ok; i++)
            ok = buf_appends(&b, i % 2 ? "[" : "{\"k\":", NULL) == 0;
        for (size_t i = depth; i > 0 && ok; i--)
            ok = buf_appends(&b, (i - 1) % 2 ? "]" : "}", NULL) == 0;
        ok = ok && buf_appends(&b, ",\"vmId\":\"v\"}", NULL) == 0;
        CHECK(ok);
        msg = ok ? decode(CREATE_VM, b.data, &err) : NULL;
        if (depth < 1000) {
            CHECK_MSG(msg != NULL, "%s", err.msg);
            CHECK(msg != NULL && strcmp(((CreateVmRequest *)msg)->vm_id, "v") == 0);
        } else {
            CHECK(msg == NULL && err.code == INVALID);
            CHECK(strncmp(err.msg, "malformed JSON at byte", 22) == 0);
        }
        protobuf_c_message_free_unpacked(msg, NULL);
        buf_release(&b);
    }
}

/* ------------------------------------------------------------------------
 * Encoding
 * ------------------------------------------------------------------------ */

static void test_encode_defaults_omitted(void)
{
    VmInfo info = METAL__VMPROVISIONER__V1__VM_INFO__INIT;
    GetVmInfoResponse resp = METAL__VMPROVISIONER__V1__GET_VM_INFO_RESPONSE__INIT;
    VmConfig empty = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    Metal__Vmprovisioner__V1__VmMetrics metrics = METAL__VMPROVISIONER__V1__VM_METRICS__INIT;
    ListVmsRequest list = METAL__VMPROVISIONER__V1__LIST_VMS_REQUEST__INIT;
    Kitchen k;
    char *s;

    s = encode(&info.base);
    CHECK_STR(s, "{}");
    free(s);

    resp.config = &empty;
    resp.metrics = &metrics;
    metrics.cpu_usage_percent = -0.0; /* zero either way, as protobuf-c packs it */
    s = encode(&resp.base);
    CHECK_STR(s, "{\"config\":{},\"metrics\":{}}");
    free(s);

    list.n_state_filter = 0;
    list.page_token = "";
    s = encode(&list.base);
    CHECK_STR(s, "{}");
    free(s);

    /* Presence fields are written even at their default. */
    kitchen_init(&k.base);
    k.has_opt_i32 = 1;
    k.choice_case = 21;
    k.one_i64 = 0;
    s = encode(&k.base);
    CHECK_STR(s, "{\"optI32\":0,\"oneI64\":\"0\"}");
    free(s);
}

static void test_encode_values(void)
{
    VmInfo info = METAL__VMPROVISIONER__V1__VM_INFO__INIT;
    Metal__Vmprovisioner__V1__VmInfo__MetadataEntry e1 =
        METAL__VMPROVISIONER__V1__VM_INFO__METADATA_ENTRY__INIT;
    Metal__Vmprovisioner__V1__VmInfo__MetadataEntry e2 =
        METAL__VMPROVISIONER__V1__VM_INFO__METADATA_ENTRY__INIT;
    Metal__Vmprovisioner__V1__VmInfo__MetadataEntry *entries[] = {&e1, &e2};
    char *s;

    info.vm_id = "a\"b\\c\x01\x1f\n\t/\xc3\xa9\x7f";
    info.state = (Metal__Vmprovisioner__V1__VmState)77;
    info.vcpu_count = -3;
    info.memory_size_bytes = INT64_MIN;
    info.n_metadata = 2;
    info.metadata = entries;
    e1.key = "k";
    e2.value = "v"; /* empty key, and the empty value of e1 is still written */
    s = encode(&info.base);
    CHECK_STR(s, "{\"vmId\":\"a\\\"b\\\\c\\u0001\\u001f\\n\\t/\xc3\xa9\x7f\",\"state\":77,"
                 "\"vcpuCount\":-3,\"memorySizeBytes\":\"-9223372036854775808\","
                 "\"metadata\":{\"k\":\"\",\"\":\"v\"}}");
    free(s);

    /* Bytes that are not UTF-8 become U+FFFD so the output stays valid. */
    info = (VmInfo)METAL__VMPROVISIONER__V1__VM_INFO__INIT;
    info.vm_id = "x\xff\xc3(\xc0\xaf\xed\xa0\x80y";
    s = encode(&info.base);
    CHECK_STR(s, "{\"vmId\":\"x\\ufffd\\ufffd(\\ufffd\\ufffd\\ufffd\\ufffd\\ufffdy\"}");
    free(s);
}

static void test_encode_floating(void)
{
    static const struct {
        const char *what;
        double value;
        const char *json;
    } doubles[] = {
        {"short fraction", 0.1, "0.1"},
        {"negative", -2.5, "-2.5"},
        {"integral without exponent", 1e6, "1000000"},
        {"large integral", 1e20, "1e+20"},
        {"needs 17 digits", 0.30000000000000004, "0.30000000000000004"},
        {"largest", DBL_MAX, "1.7976931348623157e+308"},
        {"smallest subnormal", 5e-324, "5e-324"},
        {"NaN", NAN, "\"NaN\""},
        {"Infinity", INFINITY, "\"Infinity\""},
        {"-Infinity", -INFINITY, "\"-Infinity\""},
    };
    static const struct {
        const char *what;
        float value;
        const char *json;
    } floats[] = {
        {"short fraction", 0.1f, "0.1"},
        {"integral", 16777216.0f, "16777216"},
        {"largest", FLT_MAX, "3.4028235e+38"},
        {"smallest normal", FLT_MIN, "1.1754944e-38"},
        {"NaN", NAN, "\"NaN\""},
        {"-Infinity", -INFINITY, "\"-Infinity\""},
    };
    Kitchen k;
    char want[64];

    for (size_t i = 0; i < ROWS(doubles); i++) {
        char *s;
        kitchen_init(&k.base);
        k.db = doubles[i].value;
        snprintf(want, sizeof(want), "{\"db\":%s}", doubles[i].json);
        s = encode(&k.base);
        CHECK_MSG(s != NULL && strcmp(s, want) == 0, "double %s: %s", doubles[i].what,
                  s ? s : "(null)");
        free(s);
    }
    for (size_t i = 0; i < ROWS(floats); i++) {
        char *s;
        kitchen_init(&k.base);
        k.fl = floats[i].value;
        snprintf(want, sizeof(want), "{\"fl\":%s}", floats[i].json);
        s = encode(&k.base);
        CHECK_MSG(s != NULL && strcmp(s, want) == 0, "float %s: %s", floats[i].what,
                  s ? s : "(null)");
        free(s);
    }
}

static void test_encode_errors(void)
{
    struct berth_err err;
    struct buf b;
    ProtobufCMessage *msg;

    /* The output cap is resource_exhausted, whatever was written so far. */
    msg = decode(CREATE_VM, full_create_vm, &err);
    CHECK(msg != NULL);
    for (size_t cap = 0; msg != NULL && cap < sizeof(full_create_vm); cap += 97) {
        buf_init(&b, cap);
        berth_err_clear(&err);
        CHECK(json_codec_encode(msg, &b, &err) == -1);
        CHECK(err.code == BERTH_RESOURCE_EXHAUSTED);
        buf_release(&b);
    }
    protobuf_c_message_free_unpacked(msg, NULL);

    buf_init(&b, 64);
    berth_err_clear(&err);
    CHECK(json_codec_encode(NULL, &b, &err) == -1);
    CHECK(err.code == BERTH_INTERNAL);
    buf_release(&b);
}

/* ------------------------------------------------------------------------
 * Memory: an allocator that fails after N allocations and counts what is
 * still live, so every failure point is checked for leaks and for
 * resource_exhausted.
 * ------------------------------------------------------------------------ */

struct failing {
    ProtobufCAllocator pb;
    long budget; /* allocations left before failing */
    long live;
};

static void *failing_alloc(void *ctx, size_t size)
{
    struct failing *f = ctx;
    void *p;

    if (f->budget <= 0)
        return NULL;
    f->budget--;
    p = malloc(size);
    if (p != NULL)
        f->live++;
    return p;
}

static void failing_free(void *ctx, void *ptr)
{
    struct failing *f = ctx;

    if (ptr != NULL) {
        f->live--;
        free(ptr);
    }
}

static void check_alloc_failures(const ProtobufCMessageDescriptor *desc, const char *json)
{
    int succeeded = 0;

    for (long budget = 0; budget < 10000 && !succeeded; budget++) {
        struct failing f = {{failing_alloc, failing_free, NULL}, budget, 0};
        struct berth_err err;
        ProtobufCMessage *msg = NULL;
        int rc;

        f.pb.allocator_data = &f;
        berth_err_clear(&err);
        rc = json_codec_decode(desc, json, strlen(json), &f.pb, &msg, &err);
        if (rc == 0) {
            succeeded = 1;
            protobuf_c_message_free_unpacked(msg, &f.pb);
        } else {
            CHECK_MSG(err.code == BERTH_RESOURCE_EXHAUSTED, "budget %ld: %s", budget, err.msg);
            CHECK(msg == NULL);
        }
        CHECK_MSG(f.live == 0, "budget %ld: %ld allocations leaked", budget, f.live);
    }
    CHECK(succeeded);
}

/* Every well-known type at once, for the allocation torture test. */
static const char full_wkt[] =
    "{\"ts\":\"1972-01-01T10:00:20.5Z\",\"dur\":\"-1.5s\",\"i32\":1,\"str\":\"s\",\"by\":\"aGk=\","
    "\"st\":{\"a\":[1,\"b\",null,{\"c\":true}],\"a\":{}},\"val\":\"v\",\"list\":[[]],"
    "\"mask\":\"aB,c.dE\",\"empty\":{},\"vals\":[null],\"valMap\":{\"k\":1,\"k\":2},"
    "\"any\":{\"@type\":\"type.googleapis.com/berth.test.WktTest\",\"labels\":{\"x\":\"y\"},"
    "\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Struct\",\"value\":{\"q\":1}}},"
    "\"tss\":[\"0001-01-01T00:00:00Z\"],\"durs\":{\"1\":\"1s\",\"1\":\"2s\"}}";

static void test_allocation_failures(void)
{
    check_alloc_failures(CREATE_VM, full_create_vm);
    check_alloc_failures(KITCHEN, full_kitchen);
    check_alloc_failures(WKT, full_wkt);
}

/* pb_check_strings: strings of binary messages, at any depth, must be
 * UTF-8 without NUL; the error names the path. The message is packed with
 * placeholder strings, whose bytes are then patched. */
static void test_check_binary(void)
{
    static const struct {
        const char *what;
        const char *find;  /* placeholder to patch (first match) */
        size_t offset;     /* byte of it to replace */
        unsigned char put; /* with this */
        const char *msg;   /* NULL: accepted */
    } rows[] = {
        {"untouched", "QQ", 0, 'Q', NULL},
        {"NUL in a top-level string", "IDID", 1, 0,
         "invalid value for field 'vmId': a string may not hold a NUL byte"},
        {"bad byte in a top-level string", "IDID", 3, 0xff,
         "invalid value for field 'vmId': expected a string in valid UTF-8"},
        {"NUL in a nested repeated string", "QQ", 1, 0,
         "invalid value for field 'config.container.command[1]': a string may not hold a NUL "
         "byte"},
        {"cut sequence in a nested string", "IMG", 2, 0xe2,
         "invalid value for field 'config.container.image': expected a string in valid UTF-8"},
        {"bad map value names its key", "VV", 0, 0xc0,
         "invalid value for field 'config.metadata[\"kk\"]': expected a string in valid UTF-8"},
        {"NUL in a map key", "kk", 1, 0,
         "invalid value for field 'config.metadata': map key: a string may not hold a NUL byte"},
        {"NUL in a map value of a nested message", "EV", 1, 0,
         "invalid value for field 'config.container.env[\"EK\"]': a string may not hold a NUL "
         "byte"},
    };
    Metal__Vmprovisioner__V1__CreateVmRequest req =
        METAL__VMPROVISIONER__V1__CREATE_VM_REQUEST__INIT;
    Metal__Vmprovisioner__V1__VmConfig cfg = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    Metal__Vmprovisioner__V1__ContainerSpec ctr = METAL__VMPROVISIONER__V1__CONTAINER_SPEC__INIT;
    Metal__Vmprovisioner__V1__VmConfig__MetadataEntry md =
        METAL__VMPROVISIONER__V1__VM_CONFIG__METADATA_ENTRY__INIT;
    Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry env =
        METAL__VMPROVISIONER__V1__CONTAINER_SPEC__ENV_ENTRY__INIT;
    Metal__Vmprovisioner__V1__VmConfig__MetadataEntry *mds[] = {&md};
    Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry *envs[] = {&env};
    char *cmd[] = {"a", "QQ"};
    uint8_t packed[512], bytes[512];
    size_t n;

    req.vm_id = "IDID";
    req.config = &cfg;
    cfg.container = &ctr;
    cfg.n_metadata = 1;
    cfg.metadata = mds;
    md.key = "kk";
    md.value = "VV";
    ctr.image = "IMG";
    ctr.n_command = 2;
    ctr.command = cmd;
    ctr.n_env = 1;
    ctr.env = envs;
    env.key = "EK";
    env.value = "EV";
    n = protobuf_c_message_pack(&req.base, packed);
    CHECK(n < sizeof(packed));
    for (size_t i = 0; i < ROWS(rows); i++) {
        uint8_t *at;
        struct berth_err err;
        int rc;

        memcpy(bytes, packed, n);
        at = memmem(bytes, n, rows[i].find, strlen(rows[i].find));
        CHECK_MSG(at != NULL, "%s: placeholder", rows[i].what);
        if (at == NULL)
            continue;
        at[rows[i].offset] = rows[i].put;
        berth_err_clear(&err);
        rc = pb_check_strings(CREATE_VM, bytes, n, &err);
        if (rows[i].msg == NULL) {
            CHECK_MSG(rc == 0, "%s: refused: %s", rows[i].what, err.msg);
            continue;
        }
        CHECK_MSG(rc == -1 && err.code == INVALID, "%s: accepted", rows[i].what);
        CHECK_STR(err.msg, rows[i].msg);
    }
}

/* Error paths free what they built with a real allocator too. */
static void test_error_paths_free(void)
{
    static const char *bad[] = {
        "{\"config\":{\"storage\":[{\"id\":\"a\"},{\"id\":5}]}}",
        "{\"config\":{\"metadata\":{\"a\":\"b\",\"c\":null}}}",
        "{\"config\":{\"metadata\":{\"a\":\"b\",\"a\":\"c\",\"d\":5}},\"vmId\":\"x\"}",
        "{\"vmId\":\"x\",\"config\":{\"container\":{\"command\":[\"a\",\"b\",null]}}}",
        "{\"vmId\":\"x\",\"vmId\":\"y\"}",
    };

    for (size_t i = 0; i < ROWS(bad); i++) {
        struct failing f = {{failing_alloc, failing_free, NULL}, 1000000, 0};
        struct berth_err err;
        ProtobufCMessage *msg = NULL;

        f.pb.allocator_data = &f;
        berth_err_clear(&err);
        CHECK(json_codec_decode(CREATE_VM, bad[i], strlen(bad[i]), &f.pb, &msg, &err) == -1);
        CHECK(err.code == INVALID);
        CHECK_MSG(f.live == 0, "row %zu: %ld allocations leaked", i, f.live);
    }
}

/* ------------------------------------------------------------------------
 * Well-known types (tests/unit/proto/wkt_test.proto)
 * ------------------------------------------------------------------------ */

static void test_wkt_accepts(void)
{
    static const struct {
        const char *what;
        const ProtobufCMessageDescriptor *desc;
        const char *in, *out;
    } rows[] = {
        {"timestamp Z", WKT, "{\"ts\":\"1972-01-01T10:00:20Z\"}",
         "{\"ts\":\"1972-01-01T10:00:20Z\"}"},
        {"timestamp epoch", WKT, "{\"ts\":\"1970-01-01T00:00:00Z\"}",
         "{\"ts\":\"1970-01-01T00:00:00Z\"}"},
        {"timestamp 3 digits", WKT, "{\"ts\":\"1972-01-01T10:00:20.02Z\"}",
         "{\"ts\":\"1972-01-01T10:00:20.020Z\"}"},
        {"timestamp 6 digits", WKT, "{\"ts\":\"2000-02-29T23:59:59.0000010Z\"}",
         "{\"ts\":\"2000-02-29T23:59:59.000001Z\"}"},
        {"timestamp 9 digits", WKT, "{\"ts\":\"1969-12-31T23:59:59.999999999Z\"}",
         "{\"ts\":\"1969-12-31T23:59:59.999999999Z\"}"},
        {"timestamp positive offset", WKT, "{\"ts\":\"1972-01-01T10:00:20+01:30\"}",
         "{\"ts\":\"1972-01-01T08:30:20Z\"}"},
        {"timestamp negative offset crosses the day", WKT, "{\"ts\":\"1999-12-31T23:00:00-02:00\"}",
         "{\"ts\":\"2000-01-01T01:00:00Z\"}"},
        {"timestamp minimum", WKT, "{\"ts\":\"0001-01-01T00:00:00Z\"}",
         "{\"ts\":\"0001-01-01T00:00:00Z\"}"},
        {"timestamp maximum", WKT, "{\"ts\":\"9999-12-31T23:59:59.999999999Z\"}",
         "{\"ts\":\"9999-12-31T23:59:59.999999999Z\"}"},
        {"timestamp list", WKT, "{\"tss\":[\"1970-01-01T00:00:01Z\",\"1970-01-01T00:00:00Z\"]}",
         "{\"tss\":[\"1970-01-01T00:00:01Z\",\"1970-01-01T00:00:00Z\"]}"},
        {"timestamp as the root", TIMESTAMP, "\"2020-05-06T07:08:09.5Z\"",
         "\"2020-05-06T07:08:09.500Z\""},
        {"duration", WKT, "{\"dur\":\"1.5s\"}", "{\"dur\":\"1.500s\"}"},
        {"duration whole", WKT, "{\"dur\":\"3s\"}", "{\"dur\":\"3s\"}"},
        {"duration negative nano", WKT, "{\"dur\":\"-0.000000001s\"}",
         "{\"dur\":\"-0.000000001s\"}"},
        {"duration negative", WKT, "{\"dur\":\"-1.000002s\"}", "{\"dur\":\"-1.000002s\"}"},
        {"duration zero", WKT, "{\"dur\":\"0s\"}", "{\"dur\":\"0s\"}"},
        {"duration limits", WKT,
         "{\"durs\":{\"1\":\"315576000000.999999999s\",\"2\":\"-315576000000s\"}}",
         "{\"durs\":{\"1\":\"315576000000.999999999s\",\"2\":\"-315576000000s\"}}"},
        {"wrappers as bare values", WKT,
         "{\"i32\":-5,\"i64\":\"7\",\"u32\":\"3\",\"u64\":9,\"fl\":1.5,\"db\":\"NaN\",\"b\":true,"
         "\"str\":\"s\",\"by\":\"aGk=\"}",
         "{\"i32\":-5,\"i64\":\"7\",\"u32\":3,\"u64\":\"9\",\"fl\":1.5,\"db\":\"NaN\",\"b\":true,"
         "\"str\":\"s\",\"by\":\"aGk=\"}"},
        {"wrappers holding defaults are written", WKT,
         "{\"i32\":0,\"i64\":\"0\",\"b\":false,\"str\":\"\",\"by\":\"\"}",
         "{\"i32\":0,\"i64\":\"0\",\"b\":false,\"str\":\"\",\"by\":\"\"}"},
        {"wrapper null is unset", WKT, "{\"i32\":null}", "{}"},
        {"struct", WKT,
         "{\"st\":{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":[true,{\"e\":[]}],\"f\":{}}}",
         "{\"st\":{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":[true,{\"e\":[]}],\"f\":{}}}"},
        {"struct key twice", WKT, "{\"st\":{\"a\":1,\"a\":2}}", "{\"st\":{\"a\":2}}"},
        {"empty struct", WKT, "{\"st\":{}}", "{\"st\":{}}"},
        {"value null", WKT, "{\"val\":null}", "{\"val\":null}"},
        {"value number", WKT, "{\"val\":-2.5e3}", "{\"val\":-2500}"},
        {"value string", WKT, "{\"val\":\"s\"}", "{\"val\":\"s\"}"},
        {"value bool", WKT, "{\"val\":false}", "{\"val\":false}"},
        {"value object", WKT, "{\"val\":{\"k\":[1,null]}}", "{\"val\":{\"k\":[1,null]}}"},
        {"value list", WKT, "{\"val\":[]}", "{\"val\":[]}"},
        {"list of values with null", WKT, "{\"vals\":[null,1,\"a\"]}", "{\"vals\":[null,1,\"a\"]}"},
        {"map of values with null", WKT, "{\"valMap\":{\"n\":null,\"o\":{}}}",
         "{\"valMap\":{\"n\":null,\"o\":{}}}"},
        {"list value", WKT, "{\"list\":[1,[2],{\"a\":null}]}", "{\"list\":[1,[2],{\"a\":null}]}"},
        {"value as the root", VALUE, "[1,\"a\",null]", "[1,\"a\",null]"},
        {"null value enum", WKT, "{\"nullValue\":null}", "{}"},
        {"null value enum of an unknown number", WKT, "{\"nullValue\":5}", "{\"nullValue\":5}"},
        {"field mask", WKT, "{\"mask\":\"fooBar,baz,a.bC\"}", "{\"mask\":\"fooBar,baz,a.bC\"}"},
        {"empty field mask", WKT, "{\"mask\":\"\"}", "{\"mask\":\"\"}"},
        {"empty", WKT, "{\"empty\":{}}", "{\"empty\":{}}"},
        {"any of a message", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/berth.test.WktTest\",\"i32\":5,"
         "\"ts\":\"1970-01-01T00:00:01Z\"}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/"
         "berth.test.WktTest\",\"ts\":\"1970-01-01T00:00:01Z\","
         "\"i32\":5}}"},
        {"any with @type last", WKT,
         "{\"any\":{\"labels\":{\"a\":\"b\"},\"@type\":\"type.googleapis.com/"
         "berth.test.WktTest\"}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/"
         "berth.test.WktTest\",\"labels\":{\"a\":\"b\"}}}"},
        {"any of a timestamp", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Timestamp\","
         "\"value\":\"1970-01-01T00:00:01Z\"}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Timestamp\","
         "\"value\":\"1970-01-01T00:00:01Z\"}}"},
        {"any of a wrapper", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/"
         "google.protobuf.Int64Value\",\"value\":\"-3\"}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/"
         "google.protobuf.Int64Value\",\"value\":\"-3\"}}"},
        {"any of a struct", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/"
         "google.protobuf.Struct\",\"value\":{\"a\":[]}}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/"
         "google.protobuf.Struct\",\"value\":{\"a\":[]}}}"},
        {"any of an any", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Any\",\"value\":{\"@type\":"
         "\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"2s\"}}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Any\",\"value\":{\"@type\":"
         "\"type.googleapis.com/google.protobuf.Duration\",\"value\":\"2s\"}}}"},
        {"any of an empty", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Empty\",\"value\":{}}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Empty\",\"value\":{}}}"},
        {"any of a service message", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/metal.vmprovisioner.v1.VmConfig\","
         "\"cpu\":{\"vcpu_count\":2}}}",
         "{\"any\":{\"@type\":\"type.googleapis.com/metal.vmprovisioner.v1.VmConfig\","
         "\"cpu\":{\"vcpuCount\":2}}}"},
        {"empty any", WKT, "{\"any\":{}}", "{\"any\":{}}"},
        {"nested", WKT, "{\"child\":{\"child\":{\"dur\":\"0.5s\"}}}",
         "{\"child\":{\"child\":{\"dur\":\"0.500s\"}}}"},
    };
    struct berth_err err;

    for (size_t i = 0; i < ROWS(rows); i++) {
        struct arena *arena = arena_new();
        char *sys = canonical(rows[i].desc, rows[i].in, NULL, &err);
        CHECK_MSG(sys != NULL && strcmp(sys, rows[i].out) == 0, "%s: got %s (%s)", rows[i].what,
                  sys ? sys : "(null)", err.msg);
        if (arena != NULL) {
            char *ar = canonical(rows[i].desc, rows[i].in, arena_allocator(arena), &err);
            CHECK_MSG(ar != NULL && sys != NULL && strcmp(ar, sys) == 0, "%s (arena)",
                      rows[i].what);
            free(ar);
        }
        /* The output is canonical: it decodes to the same message. */
        if (sys != NULL)
            check_round_trip(rows[i].desc, sys);
        free(sys);
        arena_free(arena);
    }
}

static void test_wkt_rejects(void)
{
    static const struct {
        const char *what;
        const ProtobufCMessageDescriptor *desc;
        const char *in;
        const char *msg; /* the exact message, or a prefix ending in '*' */
    } rows[] = {
        {"timestamp not a string", WKT, "{\"ts\":0}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string, got 0"},
        {"timestamp no zone", WKT, "{\"ts\":\"1972-01-01T10:00:20\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string, got "
         "'1972-01-01T10:00:20'"},
        {"timestamp lowercase t", WKT, "{\"ts\":\"1972-01-01t10:00:20Z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp lowercase z", WKT, "{\"ts\":\"1972-01-01T10:00:20z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp ten fractional digits", WKT, "{\"ts\":\"1972-01-01T10:00:20.0123456789Z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp empty fraction", WKT, "{\"ts\":\"1972-01-01T10:00:20.Z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp bad day", WKT, "{\"ts\":\"1971-02-29T00:00:00Z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp bad hour", WKT, "{\"ts\":\"1971-02-01T24:00:00Z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp year 0", WKT, "{\"ts\":\"0000-12-31T23:59:59Z\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"timestamp before year 1 by offset", WKT, "{\"ts\":\"0001-01-01T00:00:00+00:01\"}",
         "invalid value for field 'ts': timestamp out of range (years 0001 to 9999)"},
        {"timestamp after 9999 by offset", WKT, "{\"tss\":[\"9999-12-31T23:59:59-00:01\"]}",
         "invalid value for field 'tss[0]': timestamp out of range (years 0001 to 9999)"},
        {"timestamp bad offset", WKT, "{\"ts\":\"1972-01-01T10:00:20+1:00\"}",
         "invalid value for field 'ts': expected an RFC 3339 timestamp string*"},
        {"duration without s", WKT, "{\"dur\":\"1.5\"}",
         "invalid value for field 'dur': expected a duration string such as \"1.5s\", got '1.5'"},
        {"duration number", WKT, "{\"dur\":1}",
         "invalid value for field 'dur': expected a duration string such as \"1.5s\", got 1"},
        {"duration too long", WKT, "{\"dur\":\"315576000001s\"}",
         "invalid value for field 'dur': duration out of range (+-315576000000s)"},
        {"duration far too long", WKT, "{\"dur\":\"-99999999999999999999999s\"}",
         "invalid value for field 'dur': duration out of range (+-315576000000s)"},
        {"duration ten digits", WKT, "{\"dur\":\"1.0000000001s\"}",
         "invalid value for field 'dur': expected a duration string*"},
        {"duration plus sign", WKT, "{\"dur\":\"+1s\"}",
         "invalid value for field 'dur': expected a duration string*"},
        {"int32 wrapper out of range", WKT, "{\"i32\":2147483648}",
         "invalid value for field 'i32': value out of range for int32"},
        {"wrapper as an object", WKT, "{\"i32\":{\"value\":1}}",
         "invalid value for field 'i32': expected a bare value for a wrapper type, got an object"},
        {"bool wrapper from a string", WKT, "{\"b\":\"true\"}",
         "invalid value for field 'b': expected true or false, got 'true'"},
        {"bytes wrapper bad base64", WKT, "{\"by\":\"a\"}",
         "invalid value for field 'by': expected standard or URL-safe base64"},
        {"struct from a list", WKT, "{\"st\":[]}",
         "invalid value for field 'st': expected an object, got an array"},
        {"list value from an object", WKT, "{\"list\":{}}",
         "invalid value for field 'list': expected an array, got an object"},
        {"struct value path", WKT, "{\"st\":{\"a\":{\"b\":\"\\ud800\"}}}",
         "invalid value for field 'st[\"a\"][\"b\"]': invalid \\u escape: a lone UTF-16 "
         "surrogate"},
        {"field mask with an underscore", WKT, "{\"mask\":\"foo_bar\"}",
         "invalid value for field 'mask': field mask paths are lowerCamelCase, without '_'"},
        {"field mask not a string", WKT, "{\"mask\":[\"a\"]}",
         "invalid value for field 'mask': expected a field mask string, got an array"},
        {"any without @type", WKT, "{\"any\":{\"i32\":1}}",
         "invalid value for field 'any': expected \"@type\" naming the message in an Any"},
        {"any of an unknown type", WKT, "{\"any\":{\"@type\":\"type.googleapis.com/nope.Nope\"}}",
         "invalid value for field 'any': unknown type 'type.googleapis.com/nope.Nope' in an Any"},
        {"any with a URL without a slash", WKT, "{\"any\":{\"@type\":\"berth.test.WktTest\"}}",
         "invalid value for field 'any': unknown type 'berth.test.WktTest' in an Any"},
        {"any of a well-known type without value", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\"}}",
         "invalid value for field 'any': expected \"value\" for the google.protobuf.Duration in "
         "an Any"},
        {"any value of the wrong form", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/google.protobuf.Duration\",\"value\":1}}",
         "invalid value for field 'any': expected a duration string such as \"1.5s\", got 1"},
        {"any message field error", WKT,
         "{\"any\":{\"@type\":\"type.googleapis.com/berth.test.WktTest\",\"ts\":\"x\"}}",
         "invalid value for field 'any.ts': expected an RFC 3339 timestamp string, got 'x'"},
        {"value: NaN is not a number here", WKT, "{\"val\":\"NaN\"}", NULL},
        {"timestamp root from an object", TIMESTAMP, "{}",
         "invalid value for field '': expected an RFC 3339 timestamp string, got an object"},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        size_t want = rows[i].msg != NULL ? strlen(rows[i].msg) : 0;
        int prefix = want > 0 && rows[i].msg[want - 1] == '*';
        ProtobufCMessage sentinel, *out = &sentinel;
        struct berth_err err;
        int rc;

        if (rows[i].msg == NULL) /* accepted: "NaN" is a string Value */
            continue;
        berth_err_clear(&err);
        rc = json_codec_decode(rows[i].desc, rows[i].in, strlen(rows[i].in), NULL, &out, &err);
        CHECK_MSG(rc == -1 && out == &sentinel, "%s: accepted", rows[i].what);
        CHECK_MSG(err.code == INVALID, "%s: code %d", rows[i].what, (int)err.code);
        CHECK_MSG(prefix ? strncmp(err.msg, rows[i].msg, want - 1) == 0
                         : strcmp(err.msg, rows[i].msg) == 0,
                  "%s: got \"%s\"", rows[i].what, err.msg);
        if (rc == 0 && out != &sentinel)
            protobuf_c_message_free_unpacked(out, NULL);
    }
}

/* What the JSON forms cannot say fails to encode, as internal. */
static void test_wkt_encode_errors(void)
{
    static const struct {
        const char *what;
        int64_t ts_s, dur_s;
        int32_t ts_n, dur_n;
        int value_kind; /* 0: no Value; 1: a Value with no kind; 2: NaN */
        const char *mask;
        const char *any_url;
    } rows[] = {
        {"timestamp before year 1", INT64_C(-62135596801), 0, 0, 0, 0, NULL, NULL},
        {"timestamp after 9999", INT64_C(253402300800), 0, 0, 0, 0, NULL, NULL},
        {"timestamp negative nanos", 0, 0, -1, 0, 0, NULL, NULL},
        {"timestamp nanos of a second", 0, 0, 1000000000, 0, 0, NULL, NULL},
        {"duration too long", 0, INT64_C(315576000001), 0, 0, 0, NULL, NULL},
        {"duration signs differ", 0, 1, 0, -1, 0, NULL, NULL},
        {"duration nanos too big", 0, 0, 0, -1000000000, 0, NULL, NULL},
        {"value with no kind", 0, 0, 0, 0, 1, NULL, NULL},
        {"value NaN", 0, 0, 0, 0, 2, NULL, NULL},
        {"field mask path without camel form", 0, 0, 0, 0, 0, "foo_1", NULL},
        {"field mask path in camel case", 0, 0, 0, 0, 0, "fooBar", NULL},
        {"any of an unknown type", 0, 0, 0, 0, 0, NULL, "type.googleapis.com/x.Y"},
    };

    for (size_t i = 0; i < ROWS(rows); i++) {
        Berth__Test__WktTest m = BERTH__TEST__WKT_TEST__INIT;
        Google__Protobuf__Timestamp ts = GOOGLE__PROTOBUF__TIMESTAMP__INIT;
        Google__Protobuf__Duration dur = GOOGLE__PROTOBUF__DURATION__INIT;
        Google__Protobuf__Value val = GOOGLE__PROTOBUF__VALUE__INIT;
        Google__Protobuf__FieldMask mask = GOOGLE__PROTOBUF__FIELD_MASK__INIT;
        Google__Protobuf__Any any = GOOGLE__PROTOBUF__ANY__INIT;
        char *paths[1];
        struct berth_err err;
        struct buf b;

        if (rows[i].ts_s != 0 || rows[i].ts_n != 0) {
            ts.seconds = rows[i].ts_s;
            ts.nanos = rows[i].ts_n;
            m.ts = &ts;
        }
        if (rows[i].dur_s != 0 || rows[i].dur_n != 0) {
            dur.seconds = rows[i].dur_s;
            dur.nanos = rows[i].dur_n;
            m.dur = &dur;
        }
        if (rows[i].value_kind != 0) {
            if (rows[i].value_kind == 2) {
                val.kind_case = GOOGLE__PROTOBUF__VALUE__KIND_NUMBER_VALUE;
                val.number_value = NAN;
            }
            m.val = &val;
        }
        if (rows[i].mask != NULL) {
            paths[0] = (char *)rows[i].mask;
            mask.n_paths = 1;
            mask.paths = paths;
            m.mask = &mask;
        }
        if (rows[i].any_url != NULL) {
            any.type_url = (char *)rows[i].any_url;
            m.any = &any;
        }
        berth_err_clear(&err);
        buf_init(&b, 1 << 20);
        CHECK_MSG(json_codec_encode(&m.base, &b, &err) == -1, "%s: encoded %s", rows[i].what,
                  b.data ? b.data : "");
        CHECK_MSG(err.code == BERTH_INTERNAL, "%s: code %d", rows[i].what, (int)err.code);
        buf_release(&b);
    }
}

/* Binary input: protobuf-c keeps every entry of a key given twice;
 * pb_check_input keeps the last, at any depth, and JSON says each key once. */
static void test_binary_map_last_wins(void)
{
    Metal__Vmprovisioner__V1__CreateVmRequest req =
        METAL__VMPROVISIONER__V1__CREATE_VM_REQUEST__INIT;
    Metal__Vmprovisioner__V1__VmConfig cfg = METAL__VMPROVISIONER__V1__VM_CONFIG__INIT;
    Metal__Vmprovisioner__V1__ContainerSpec ctr = METAL__VMPROVISIONER__V1__CONTAINER_SPEC__INIT;
    Metal__Vmprovisioner__V1__VmConfig__MetadataEntry md[3] = {
        METAL__VMPROVISIONER__V1__VM_CONFIG__METADATA_ENTRY__INIT,
        METAL__VMPROVISIONER__V1__VM_CONFIG__METADATA_ENTRY__INIT,
        METAL__VMPROVISIONER__V1__VM_CONFIG__METADATA_ENTRY__INIT};
    Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry env[2] = {
        METAL__VMPROVISIONER__V1__CONTAINER_SPEC__ENV_ENTRY__INIT,
        METAL__VMPROVISIONER__V1__CONTAINER_SPEC__ENV_ENTRY__INIT};
    Metal__Vmprovisioner__V1__VmConfig__MetadataEntry *mds[] = {&md[0], &md[1], &md[2]};
    Metal__Vmprovisioner__V1__ContainerSpec__EnvEntry *envs[] = {&env[0], &env[1]};
    uint8_t packed[512];
    size_t n;
    char *json;

    req.vm_id = "v";
    req.config = &cfg;
    cfg.container = &ctr;
    cfg.n_metadata = 3;
    cfg.metadata = mds;
    md[0].key = "a";
    md[0].value = "1";
    md[1].key = "b";
    md[1].value = "2";
    md[2].key = "a";
    md[2].value = "3";
    ctr.n_env = 2;
    ctr.env = envs;
    env[0].key = "K";
    env[0].value = "x";
    env[1].key = "K";
    env[1].value = "y";

    /* The encoder alone already says each key once, with the last value. */
    json = encode(&req.base);
    CHECK_STR(json, "{\"vmId\":\"v\",\"config\":{\"metadata\":{\"b\":\"2\",\"a\":\"3\"},"
                    "\"container\":{\"env\":{\"K\":\"y\"}}}}");
    free(json);

    n = protobuf_c_message_pack(&req.base, packed);
    CHECK(n < sizeof(packed));
    for (int use_arena = 0; use_arena < 2; use_arena++) {
        struct arena *arena = use_arena ? arena_new() : NULL;
        ProtobufCAllocator *alloc = arena ? arena_allocator(arena) : NULL;
        ProtobufCMessage *msg = protobuf_c_message_unpack(CREATE_VM, alloc, n, packed);
        CreateVmRequest *got = (CreateVmRequest *)msg;
        struct berth_err err;

        CHECK(msg != NULL);
        if (msg == NULL)
            continue;
        CHECK(got->config->n_metadata == 3); /* protobuf-c keeps them all */
        berth_err_clear(&err);
        CHECK(pb_check_input(CREATE_VM, packed, n, msg, alloc, &err) == 0);
        CHECK(got->config->n_metadata == 2 && got->config->container->n_env == 1);
        if (got->config->n_metadata == 2) {
            CHECK_STR(got->config->metadata[0]->key, "b");
            CHECK_STR(got->config->metadata[1]->key, "a");
            CHECK_STR(got->config->metadata[1]->value, "3");
        }
        if (got->config->container->n_env == 1)
            CHECK_STR(got->config->container->env[0]->value, "y");
        protobuf_c_message_free_unpacked(msg, alloc);
        arena_free(arena);
    }
}

/* Field numbers the binary path takes are those protobuf-c can read again
 * once it packed them: 0 (which it takes spelt in two bytes) and past
 * 2^29-1 (which it packs wrapped round) are malformed. */
static void test_binary_field_numbers(void)
{
#define B(s) s, sizeof(s) - 1
    static const struct {
        const char *what;
        const char *bytes;
        size_t len;
        const char *msg; /* NULL: accepted */
    } rows[] = {
        {"field number 0 in two bytes", B("\x80\x00\x00"),
         "malformed protobuf body for 'metal.vmprovisioner.v1.CreateVmRequest'"},
        {"field number 0 in a nested message", B("\x12\x03\x80\x00\x00"),
         "malformed protobuf body for 'metal.vmprovisioner.v1.VmConfig'"},
        {"field number 2^29", B("\x80\x80\x80\x80\x10\x00"),
         "malformed protobuf body for 'metal.vmprovisioner.v1.CreateVmRequest'"},
        {"field number 2^29-1", B("\xf8\xff\xff\xff\x0f\x00"), NULL},
        {"an over-long tag of a known field", B("\x8a\x00\x01x"), NULL},
    };
#undef B

    for (size_t i = 0; i < ROWS(rows); i++) {
        ProtobufCMessage *msg =
            protobuf_c_message_unpack(CREATE_VM, NULL, rows[i].len, (const uint8_t *)rows[i].bytes);
        struct berth_err err;
        int rc;

        CHECK_MSG(msg != NULL, "%s: protobuf-c takes it", rows[i].what);
        if (msg == NULL)
            continue;
        berth_err_clear(&err);
        rc =
            pb_check_input(CREATE_VM, (const uint8_t *)rows[i].bytes, rows[i].len, msg, NULL, &err);
        if (rows[i].msg != NULL) {
            CHECK_MSG(rc < 0 && err.code == INVALID, "%s: rc %d", rows[i].what, rc);
            CHECK_STR(err.msg, rows[i].msg);
        } else {
            uint8_t again[64];
            size_t n = protobuf_c_message_get_packed_size(msg);
            ProtobufCMessage *back = NULL;

            CHECK_MSG(rc == 0, "%s: %s", rows[i].what, err.msg);
            CHECK(n < sizeof(again));
            if (n < sizeof(again)) {
                protobuf_c_message_pack(msg, again);
                back = protobuf_c_message_unpack(CREATE_VM, NULL, n, again);
            }
            CHECK_MSG(back != NULL, "%s: packed again, it reads again", rows[i].what);
            protobuf_c_message_free_unpacked(back, NULL);
        }
        protobuf_c_message_free_unpacked(msg, NULL);
    }
}

int main(void)
{
    test_camel_names();
    test_round_trip_vm_config();
    test_round_trip_kitchen();
    test_bytes_round_trip();
    test_decode_accepts();
    test_decode_rejects();
    test_nesting_limit();
    test_deep_unknown_json();
    test_encode_defaults_omitted();
    test_encode_values();
    test_encode_floating();
    test_encode_errors();
    test_allocation_failures();
    test_error_paths_free();
    test_check_binary();
    test_wkt_accepts();
    test_wkt_rejects();
    test_wkt_encode_errors();
    test_binary_map_last_wins();
    test_binary_field_numbers();
    return test_summary("test_json_codec");
}
