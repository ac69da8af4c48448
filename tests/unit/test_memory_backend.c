/* The in-memory backend's container operations and the Engine rules it
 * fakes: create (names, labels, ports), every state transition from every
 * state, remove, inspect by id or name, list with label filters, and the
 * fail-next hooks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/labels.h"
#include "berth/memory_backend.h"
#include "testlib.h"

#define ROWS(a) (sizeof(a) / sizeof((a)[0]))
#define DL BERTH_NO_DEADLINE

/* One operation by name, as the rows spell them. */
static int call_op(struct backend *b, const char *op, const char *id, struct berth_err *err)
{
    const struct backend_ops *o = b->ops;

    if (strcmp(op, "start") == 0)
        return o->start(b->ctx, id, DL, err);
    if (strcmp(op, "stop") == 0)
        return o->stop(b->ctx, id, 10, DL, err);
    if (strcmp(op, "kill") == 0)
        return o->kill(b->ctx, id, DL, err);
    if (strcmp(op, "pause") == 0)
        return o->pause(b->ctx, id, DL, err);
    if (strcmp(op, "unpause") == 0)
        return o->unpause(b->ctx, id, DL, err);
    if (strcmp(op, "restart") == 0)
        return o->restart(b->ctx, id, 10, DL, err);
    if (strcmp(op, "remove") == 0)
        return o->remove(b->ctx, id, DL, err);
    if (strcmp(op, "inspect") == 0) {
        struct backend_container c = {0};
        int rc = o->inspect(b->ctx, id, DL, &c, err);

        if (rc == 0)
            backend_container_release(&c);
        return rc;
    }
    if (strcmp(op, "list") == 0) {
        struct backend_container_list l = {0};
        int rc = o->list(b->ctx, NULL, DL, &l, err);

        if (rc == 0)
            backend_container_list_release(&l);
        return rc;
    }
    if (strcmp(op, "ping") == 0)
        return o->ping(b->ctx, DL, err);
    return berth_err_set(err, BERTH_INTERNAL, "test: no operation '%s'", op);
}

/* A container named `name` with two labels (and berth.managed added by the
 * backend); *id_out is the caller's to free. */
static int make(struct backend *b, const char *name, const char *kind, char **id_out)
{
    const struct backend_label labels[] = {{LABEL_KIND, kind}, {LABEL_VM_ID, name}};
    struct backend_spec spec = {
        .name = name, .image = "berth-test/busybox:latest", .labels = labels, .n_labels = 2};
    struct berth_err err;

    berth_err_clear(&err);
    return b->ops->create(b->ctx, &spec, DL, id_out, &err);
}

static enum backend_state state_of(struct backend *b, const char *id)
{
    struct backend_container c = {0};
    struct berth_err err;
    enum backend_state st;

    berth_err_clear(&err);
    if (b->ops->inspect(b->ctx, id, DL, &c, &err) < 0)
        return BACKEND_STATE_COUNT; /* no such state: the row fails */
    st = c.state;
    backend_container_release(&c);
    return st;
}

static void test_create_inspect(void)
{
    const struct backend_label labels[] = {{LABEL_KIND, "vm"}, {"app", "web"}};
    const struct backend_port ports[] = {{80, 0, "tcp"}, {53, 5353, "udp"}, {443, 0, "tcp"}};
    struct backend_spec spec = {.name = "web-1",
                                .image = "berth-test/busybox:latest",
                                .labels = labels,
                                .n_labels = 2,
                                .ports = ports,
                                .n_ports = 3};
    struct backend b = {0};
    struct backend_container c = {0};
    struct berth_err err;
    char *id = NULL, *id2 = NULL, *id3 = NULL;
    int64_t before = (int64_t)time(NULL);

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    CHECK_STR(b.ops->name, "memory");
    CHECK(memory_backend_count(&b) == 0);
    CHECK(b.ops->create(b.ctx, &spec, DL, &id, &err) == 0);
    CHECK(id != NULL && strlen(id) == 64 && strspn(id, "0123456789abcdef") == 64);
    CHECK(memory_backend_count(&b) == 1);

    /* By id and by name, like the Engine. */
    CHECK(b.ops->inspect(b.ctx, id, DL, &c, &err) == 0);
    CHECK_STR(c.id, id);
    CHECK_STR(c.name, "web-1");
    CHECK_STR(c.image, "berth-test/busybox:latest");
    CHECK(c.state == BACKEND_STATE_CREATED);
    CHECK(c.started_unix_ms == 0 && c.finished_unix_ms == 0);
    CHECK(c.created_unix >= before && c.created_unix <= (int64_t)time(NULL));
    CHECK_STR(c.ip_address, "");
    CHECK_STR(c.mac_address, "");
    CHECK_STR(c.gateway, "");
    CHECK(c.n_labels == 3);
    CHECK_STR(backend_container_label(&c, LABEL_KIND), "vm");
    CHECK_STR(backend_container_label(&c, "app"), "web");
    CHECK_STR(backend_container_label(&c, LABEL_MANAGED), LABEL_MANAGED_VALUE);
    /* Ports: a 0 host port gets a free one, a given one is kept. */
    CHECK(c.n_ports == 3);
    if (c.n_ports == 3) {
        CHECK(c.ports[0].container_port == 80 && c.ports[0].host_port > 0);
        CHECK_STR(c.ports[0].protocol, "tcp");
        CHECK(c.ports[1].container_port == 53 && c.ports[1].host_port == 5353);
        CHECK_STR(c.ports[1].protocol, "udp");
        CHECK(c.ports[2].host_port > 0 && c.ports[2].host_port != c.ports[0].host_port);
    }
    /* inspect hands out a copy: changing it changes nothing inside. */
    c.state = BACKEND_STATE_DEAD;
    c.name[0] = 'X';
    backend_container_release(&c);
    CHECK(b.ops->inspect(b.ctx, "web-1", DL, &c, &err) == 0);
    CHECK_STR(c.id, id);
    CHECK(c.state == BACKEND_STATE_CREATED);
    backend_container_release(&c);

    /* A name in use: already_exists, nothing made. */
    berth_err_clear(&err);
    CHECK(b.ops->create(b.ctx, &spec, DL, &id2, &err) == -1);
    CHECK(err.code == BERTH_ALREADY_EXISTS);
    CHECK_STR(err.msg, "container name 'web-1' is already in use");
    CHECK(id2 == NULL);
    CHECK(memory_backend_count(&b) == 1);

    /* Another name is fine; after a remove the name is free again, with a
     * new id. */
    spec.name = "web-2";
    berth_err_clear(&err);
    CHECK(b.ops->create(b.ctx, &spec, DL, &id2, &err) == 0);
    CHECK(id2 != NULL && strcmp(id2, id) != 0);
    CHECK(memory_backend_count(&b) == 2);
    CHECK(b.ops->remove(b.ctx, "web-1", DL, &err) == 0);
    CHECK(memory_backend_count(&b) == 1);
    spec.name = "web-1";
    CHECK(b.ops->create(b.ctx, &spec, DL, &id3, &err) == 0);
    CHECK(id3 != NULL && strcmp(id3, id) != 0 && strcmp(id3, id2) != 0);
    CHECK(state_of(&b, id) == BACKEND_STATE_COUNT);

    free(id);
    free(id2);
    free(id3);
    backend_destroy(&b);
}

/* Every operation from every state: the Engine's answer and the state after.
 * A refused operation leaves the state as it was. */
static void test_transitions(void)
{
    static const struct {
        const char *desc;
        enum backend_state from;
        const char *op;
        enum berth_code code; /* BERTH_OK: succeeds */
        enum backend_state to;
    } rows[] = {
        {"start a created container", BACKEND_STATE_CREATED, "start", BERTH_OK,
         BACKEND_STATE_RUNNING},
        {"start a running one is fine", BACKEND_STATE_RUNNING, "start", BERTH_OK,
         BACKEND_STATE_RUNNING},
        {"start an exited one", BACKEND_STATE_EXITED, "start", BERTH_OK, BACKEND_STATE_RUNNING},
        {"start a paused one: unpause first", BACKEND_STATE_PAUSED, "start",
         BERTH_FAILED_PRECONDITION, BACKEND_STATE_PAUSED},
        {"stop a running one", BACKEND_STATE_RUNNING, "stop", BERTH_OK, BACKEND_STATE_EXITED},
        {"stop a paused one", BACKEND_STATE_PAUSED, "stop", BERTH_OK, BACKEND_STATE_EXITED},
        {"stop an exited one is fine", BACKEND_STATE_EXITED, "stop", BERTH_OK,
         BACKEND_STATE_EXITED},
        {"stop a created one leaves it created", BACKEND_STATE_CREATED, "stop", BERTH_OK,
         BACKEND_STATE_CREATED},
        {"kill a running one", BACKEND_STATE_RUNNING, "kill", BERTH_OK, BACKEND_STATE_EXITED},
        {"kill a paused one", BACKEND_STATE_PAUSED, "kill", BERTH_OK, BACKEND_STATE_EXITED},
        {"kill an exited one: not running", BACKEND_STATE_EXITED, "kill", BERTH_FAILED_PRECONDITION,
         BACKEND_STATE_EXITED},
        {"kill a created one: not running", BACKEND_STATE_CREATED, "kill",
         BERTH_FAILED_PRECONDITION, BACKEND_STATE_CREATED},
        {"pause a running one", BACKEND_STATE_RUNNING, "pause", BERTH_OK, BACKEND_STATE_PAUSED},
        {"pause a paused one: not running", BACKEND_STATE_PAUSED, "pause",
         BERTH_FAILED_PRECONDITION, BACKEND_STATE_PAUSED},
        {"pause an exited one", BACKEND_STATE_EXITED, "pause", BERTH_FAILED_PRECONDITION,
         BACKEND_STATE_EXITED},
        {"pause a created one", BACKEND_STATE_CREATED, "pause", BERTH_FAILED_PRECONDITION,
         BACKEND_STATE_CREATED},
        {"unpause a paused one", BACKEND_STATE_PAUSED, "unpause", BERTH_OK, BACKEND_STATE_RUNNING},
        {"unpause a running one: not paused", BACKEND_STATE_RUNNING, "unpause",
         BERTH_FAILED_PRECONDITION, BACKEND_STATE_RUNNING},
        {"unpause an exited one", BACKEND_STATE_EXITED, "unpause", BERTH_FAILED_PRECONDITION,
         BACKEND_STATE_EXITED},
        {"restart a running one", BACKEND_STATE_RUNNING, "restart", BERTH_OK,
         BACKEND_STATE_RUNNING},
        {"restart an exited one", BACKEND_STATE_EXITED, "restart", BERTH_OK, BACKEND_STATE_RUNNING},
        {"restart a created one", BACKEND_STATE_CREATED, "restart", BERTH_OK,
         BACKEND_STATE_RUNNING},
        {"restart a paused one", BACKEND_STATE_PAUSED, "restart", BERTH_OK, BACKEND_STATE_RUNNING},
        {"inspect changes nothing", BACKEND_STATE_PAUSED, "inspect", BERTH_OK,
         BACKEND_STATE_PAUSED},
    };
    struct backend b = {0};
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    for (size_t i = 0; i < ROWS(rows); i++) {
        struct backend_container c = {0};
        char *id = NULL;
        int64_t before = berth_unix_ms();
        int rc;

        CHECK_MSG(make(&b, "vm-t", "vm", &id) == 0, "%s: create", rows[i].desc);
        CHECK_MSG(memory_backend_set_state(&b, id, rows[i].from) == 0, "%s: set state",
                  rows[i].desc);
        berth_err_clear(&err);
        rc = call_op(&b, rows[i].op, id, &err);
        CHECK_MSG((rc == 0) == (rows[i].code == BERTH_OK), "%s: rc %d (%s)", rows[i].desc, rc,
                  err.msg);
        CHECK_MSG(err.code == rows[i].code, "%s: code %s", rows[i].desc, berth_code_name(err.code));
        CHECK_MSG(b.ops->inspect(b.ctx, id, DL, &c, &err) == 0, "%s: inspect", rows[i].desc);
        CHECK_MSG(c.state == rows[i].to, "%s: %s, want %s", rows[i].desc,
                  backend_state_name(c.state), backend_state_name(rows[i].to));
        /* A start or restart that ran the container records when. */
        if (rc == 0 && (strcmp(rows[i].op, "start") == 0 || strcmp(rows[i].op, "restart") == 0))
            CHECK_MSG(c.started_unix_ms >= before, "%s: started_unix_ms", rows[i].desc);
        backend_container_release(&c);
        berth_err_clear(&err);
        CHECK_MSG(b.ops->remove(b.ctx, id, DL, &err) == 0, "%s: remove", rows[i].desc);
        free(id);
    }
    CHECK(memory_backend_count(&b) == 0);
    backend_destroy(&b);
}

/* Every operation on a container that does not exist: not_found naming it. */
static void test_not_found(void)
{
    static const char *const ops[] = {"start",   "stop",    "kill",   "pause",
                                      "unpause", "restart", "remove", "inspect"};
    struct backend b = {0};
    struct berth_err err;
    char *id = NULL;

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    CHECK(make(&b, "present", "vm", &id) == 0);
    for (size_t i = 0; i < ROWS(ops); i++) {
        berth_err_clear(&err);
        CHECK_MSG(call_op(&b, ops[i], "absent", &err) == -1, "%s of an absent container", ops[i]);
        CHECK_MSG(err.code == BERTH_NOT_FOUND, "%s: code %s", ops[i], berth_code_name(err.code));
        CHECK_MSG(strcmp(err.msg, "no such container: absent") == 0, "%s: '%s'", ops[i], err.msg);
    }
    /* Removed twice: the second is not_found. */
    CHECK(call_op(&b, "remove", id, &err) == 0);
    berth_err_clear(&err);
    CHECK(call_op(&b, "remove", id, &err) == -1 && err.code == BERTH_NOT_FOUND);
    CHECK(memory_backend_set_state(&b, "absent", BACKEND_STATE_RUNNING) == -1);
    free(id);
    backend_destroy(&b);
}

/* list: every managed container, stopped ones too, narrowed by "k=v" or
 * "k" label filters. */
static void test_list_filters(void)
{
    static const struct {
        const char *desc;
        const char *label;
        const char *want; /* the names found, sorted, joined by ',' */
    } rows[] = {
        {"no filter: all, stopped ones included", NULL, "a,b,c"},
        {"the managed label matches all", LABEL_MANAGED "=" LABEL_MANAGED_VALUE, "a,b,c"},
        {"key and value", LABEL_KIND "=vm", "a,c"},
        {"another value", LABEL_KIND "=gateway", "b"},
        {"the key alone", LABEL_VM_ID, "a,b,c"},
        {"a value nobody has", LABEL_KIND "=deployment", ""},
        {"a value's prefix", LABEL_KIND "=v", ""},
        {"a key's prefix", "berth.kin=vm", ""},
        {"a key nobody has", "nope", ""},
        {"an empty value", LABEL_KIND "=", ""},
        {"one container by its own label", LABEL_VM_ID "=c", "c"},
    };
    struct backend b = {0};
    struct berth_err err;
    char *ids[3] = {NULL, NULL, NULL};

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    CHECK(make(&b, "a", "vm", &ids[0]) == 0);
    CHECK(make(&b, "b", "gateway", &ids[1]) == 0);
    CHECK(make(&b, "c", "vm", &ids[2]) == 0);
    CHECK(call_op(&b, "start", "a", &err) == 0);
    CHECK(call_op(&b, "start", "b", &err) == 0 && call_op(&b, "stop", "b", &err) == 0);
    for (size_t i = 0; i < ROWS(rows); i++) {
        struct backend_container_list l = {0};
        char got[64] = "";
        int seen[3] = {0, 0, 0};
        size_t n = 0;

        berth_err_clear(&err);
        CHECK_MSG(b.ops->list(b.ctx, rows[i].label, DL, &l, &err) == 0, "%s: list", rows[i].desc);
        for (size_t k = 0; k < l.n; k++) {
            int which = l.items[k].name[0] - 'a';
            if (which >= 0 && which < 3 && l.items[k].name[1] == '\0')
                seen[which]++;
            CHECK_MSG(backend_container_label(&l.items[k], LABEL_MANAGED) != NULL, "%s: managed",
                      rows[i].desc);
        }
        for (int k = 0; k < 3; k++)
            if (seen[k]) {
                if (n)
                    got[n++] = ',';
                got[n++] = (char)('a' + k);
                got[n] = '\0';
            }
        CHECK_MSG(strcmp(got, rows[i].want) == 0 && l.n == (strlen(rows[i].want) + 1) / 2,
                  "%s: got '%s' (%zu items), want '%s'", rows[i].desc, got, l.n, rows[i].want);
        backend_container_list_release(&l);
    }
    for (int k = 0; k < 3; k++)
        free(ids[k]);
    backend_destroy(&b);

    /* An empty backend lists nothing, successfully. */
    CHECK(memory_backend_new(&b, &err) == 0);
    {
        struct backend_container_list l = {0};

        CHECK(b.ops->list(b.ctx, NULL, DL, &l, &err) == 0 && l.n == 0);
        backend_container_list_release(&l);
    }
    backend_destroy(&b);
}

/* fail_next: exactly the next n calls of that operation fail with the code
 * and leave nothing changed; other operations are not affected; then the
 * operation works again. */
static void test_fail_next(void)
{
    static const struct {
        const char *desc;
        const char *op;
        int n;
        enum berth_code code;
    } rows[] = {
        {"ping unavailable once", "ping", 1, BERTH_UNAVAILABLE},
        {"start unavailable twice", "start", 2, BERTH_UNAVAILABLE},
        {"stop past its deadline", "stop", 1, BERTH_DEADLINE_EXCEEDED},
        {"kill internal", "kill", 1, BERTH_INTERNAL},
        {"pause unavailable", "pause", 1, BERTH_UNAVAILABLE},
        {"unpause unavailable", "unpause", 1, BERTH_UNAVAILABLE},
        {"restart three times", "restart", 3, BERTH_UNAVAILABLE},
        {"inspect not_found", "inspect", 1, BERTH_NOT_FOUND},
        {"list unavailable", "list", 2, BERTH_UNAVAILABLE},
        {"remove unavailable", "remove", 1, BERTH_UNAVAILABLE},
    };
    struct backend b = {0};
    struct berth_err err;

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    for (size_t i = 0; i < ROWS(rows); i++) {
        char *id = NULL;
        char want[64];
        enum backend_state st;

        CHECK_MSG(make(&b, "f", "vm", &id) == 0, "%s: create", rows[i].desc);
        /* unpause needs a paused container; the others a running one. */
        CHECK(memory_backend_set_state(&b, id,
                                       strcmp(rows[i].op, "unpause") == 0
                                           ? BACKEND_STATE_PAUSED
                                           : BACKEND_STATE_RUNNING) == 0);
        st = state_of(&b, id);
        snprintf(want, sizeof(want), "injected %s failure", rows[i].op);
        memory_backend_fail_next(&b, rows[i].op, rows[i].n, rows[i].code);
        /* Another operation still works while this one is armed. */
        berth_err_clear(&err);
        CHECK_MSG(call_op(&b, strcmp(rows[i].op, "ping") == 0 ? "list" : "ping", id, &err) == 0,
                  "%s: other operations unaffected", rows[i].desc);
        for (int k = 0; k < rows[i].n; k++) {
            berth_err_clear(&err);
            CHECK_MSG(call_op(&b, rows[i].op, id, &err) == -1, "%s: call %d fails", rows[i].desc,
                      k);
            CHECK_MSG(err.code == rows[i].code, "%s: call %d code %s", rows[i].desc, k,
                      berth_code_name(err.code));
            CHECK_MSG(strcmp(err.msg, want) == 0, "%s: '%s'", rows[i].desc, err.msg);
        }
        CHECK_MSG(state_of(&b, id) == st, "%s: the state unchanged", rows[i].desc);
        CHECK_MSG(memory_backend_count(&b) == 1, "%s: still there", rows[i].desc);
        berth_err_clear(&err);
        CHECK_MSG(call_op(&b, rows[i].op, id, &err) == 0, "%s: works again after %d: %s",
                  rows[i].desc, rows[i].n, err.msg);
        berth_err_clear(&err);
        if (strcmp(rows[i].op, "remove") != 0)
            CHECK_MSG(call_op(&b, "remove", id, &err) == 0, "%s: cleanup", rows[i].desc);
        CHECK_MSG(memory_backend_count(&b) == 0, "%s: removed", rows[i].desc);
        free(id);
    }

    /* A failed create makes nothing and hands out no id. */
    {
        char *id = NULL;

        memory_backend_fail_next(&b, "create", 1, BERTH_UNAVAILABLE);
        CHECK(make(&b, "g", "vm", &id) == -1);
        CHECK(id == NULL);
        CHECK(memory_backend_count(&b) == 0);
        CHECK(make(&b, "g", "vm", &id) == 0);
        CHECK(memory_backend_count(&b) == 1);
        free(id);
    }
    /* n = 0 disarms. */
    memory_backend_fail_next(&b, "inspect", 1, BERTH_INTERNAL);
    memory_backend_fail_next(&b, "inspect", 0, BERTH_INTERNAL);
    berth_err_clear(&err);
    CHECK(call_op(&b, "inspect", "g", &err) == 0);
    backend_destroy(&b);
}

/* Many containers, removed out of order: each found by id and by name
 * until it goes and never after, the rest listed in the order made. */
static void test_many(void)
{
    enum { N = 300 };
    struct backend b = {0};
    struct berth_err err;
    char *ids[N] = {0};
    char name[32];
    int gone[N] = {0};

    berth_err_clear(&err);
    CHECK(memory_backend_new(&b, &err) == 0);
    for (int i = 0; i < N; i++) {
        /* Names in another order than the ids. */
        snprintf(name, sizeof(name), "vm-%03d", (i * 7) % N);
        CHECK(make(&b, name, "vm", &ids[i]) == 0);
    }
    CHECK(memory_backend_count(&b) == N);
    for (int k = 0; k < N; k += 2) {
        int i = (k * 11) % N; /* every even index, out of order */
        berth_err_clear(&err);
        CHECK(call_op(&b, "remove", ids[i], &err) == 0);
        gone[i] = 1;
    }
    CHECK(memory_backend_count(&b) == N / 2);
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof(name), "vm-%03d", (i * 7) % N);
        berth_err_clear(&err);
        CHECK_MSG((call_op(&b, "inspect", ids[i], &err) == 0) == !gone[i], "by id, %d", i);
        berth_err_clear(&err);
        CHECK_MSG((call_op(&b, "inspect", name, &err) == 0) == !gone[i], "by name, %d", i);
    }
    {
        struct backend_container_list l = {0};
        size_t at = 0;

        berth_err_clear(&err);
        CHECK(b.ops->list(b.ctx, NULL, DL, &l, &err) == 0);
        CHECK(l.n == N / 2);
        for (int i = 0; i < N && at < l.n; i++) {
            if (gone[i])
                continue;
            CHECK_MSG(strcmp(l.items[at].id, ids[i]) == 0, "listed %zu", at);
            at++;
        }
        backend_container_list_release(&l);
    }
    /* A name freed by a removal can be taken again. */
    {
        char *again = NULL;
        snprintf(name, sizeof(name), "vm-%03d", 0);
        CHECK(make(&b, name, "vm", &again) == 0);
        free(again);
    }
    for (int i = 0; i < N; i++)
        free(ids[i]);
    backend_destroy(&b);
}

int main(void)
{
    test_create_inspect();
    test_transitions();
    test_not_found();
    test_list_filters();
    test_fail_next();
    test_many();
    return test_summary("test_memory_backend");
}
