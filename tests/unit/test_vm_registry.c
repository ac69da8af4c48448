/* The VM registry: reserve/publish visibility, the per-VM operation lock,
 * removal under waiting callers, ordering, out-of-lock updates, and many
 * threads inserting, removing and listing at once (run it under ASan). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "berth/clock.h"
#include "berth/vm_registry.h"
#include "testlib.h"

/* A one-shot flag other threads can wait for. */
struct flag {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int set;
};

static void flag_init(struct flag *f);
static void flag_destroy(struct flag *f);
static void flag_raise(struct flag *f);
static void flag_wait(struct flag *f);
static int flag_wait_ms(struct flag *f, int ms);
static int flag_is_set(struct flag *f);
static struct vm_snapshot make_snap(const char *id, enum vm_state st);
static int add_visible(struct vm_registry *r, const char *id, enum vm_state st);
static int try_get(struct vm_registry *r, const char *id, struct vm_snapshot *out,
                   enum berth_code *code);

static void test_reserve_publish(void);
static void test_reserve_then_remove(void);
static void test_acquire_waits(void);
static void test_remove_while_waiting(void);
static void test_list_order(void);
static void test_out_of_lock_updates(void);
static void test_write_keeps_id_and_metrics(void);
static void test_count_states(void);
static void test_observe(void);
static void test_forget(void);
static void test_commit_after_news(void);
static void test_concurrent_insert_remove_list(void);
static void test_alive(void);

static void flag_init(struct flag *f)
{
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->set = 0;
}

static void flag_destroy(struct flag *f)
{
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
}

static void flag_raise(struct flag *f)
{
    pthread_mutex_lock(&f->lock);
    f->set = 1;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}

static void flag_wait(struct flag *f)
{
    pthread_mutex_lock(&f->lock);
    while (!f->set)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

/* 1 when the flag went up within ms, 0 otherwise. Used only to give a
 * wrong outcome the chance to show; never to decide a pass. */
static int flag_wait_ms(struct flag *f, int ms)
{
    struct timespec ts;
    int set;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    while (!f->set)
        if (pthread_cond_timedwait(&f->cond, &f->lock, &ts) != 0)
            break;
    set = f->set;
    pthread_mutex_unlock(&f->lock);
    return set;
}

static int flag_is_set(struct flag *f)
{
    int set;

    pthread_mutex_lock(&f->lock);
    set = f->set;
    pthread_mutex_unlock(&f->lock);
    return set;
}

/* A snapshot whose strings are borrowed (the registry deep-copies). */
static struct vm_snapshot make_snap(const char *id, enum vm_state st)
{
    static uint8_t config[] = {0x0a, 0x02, 0x08, 0x01};
    static struct backend_port ports[] = {{8080, 32768, "tcp"}};
    struct vm_snapshot s = {0};

    s.id = (char *)id;
    s.customer_id = "cust";
    s.state = st;
    s.config = config;
    s.config_len = sizeof(config);
    s.container_id = "c0ffee";
    s.container_name = "berth-vm-x";
    s.image = "busybox";
    s.ports = ports;
    s.n_ports = 1;
    s.vcpu_count = 2;
    s.memory_bytes = 1 << 26;
    s.started_unix_ms = st == VM_STATE_RUNNING ? 1234 : 0;
    return s;
}

static int add_visible(struct vm_registry *r, const char *id, enum vm_state st)
{
    struct vm_snapshot s = make_snap(id, st);
    struct vm_record *rec;
    struct berth_err err;

    berth_err_clear(&err);
    if (vm_registry_reserve(r, &s, &rec, &err) < 0)
        return -1;
    vm_registry_publish(r, rec);
    vm_registry_release(r, rec);
    return 0;
}

/* 0 and *out filled, or -1 with *code. */
static int try_get(struct vm_registry *r, const char *id, struct vm_snapshot *out,
                   enum berth_code *code)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (vm_registry_get(r, id, out, &err) < 0) {
        *code = err.code;
        return -1;
    }
    *code = BERTH_OK;
    return 0;
}

static void test_reserve_publish(void)
{
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot s = make_snap("web-1", VM_STATE_CREATED), got = {0};
    struct vm_snapshot *list = NULL;
    struct vm_record *rec = NULL, *rec2 = NULL, *held = NULL;
    struct berth_err err;
    enum berth_code code;
    size_t n = 99, counts[5];

    CHECK(r != NULL);
    berth_err_clear(&err);
    CHECK(vm_registry_reserve(r, &s, &rec, &err) == 0);

    /* Reserved: invisible to get, list, acquire and the counters. */
    CHECK(try_get(r, "web-1", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    CHECK(vm_registry_list(r, &list, &n, &err) == 0);
    CHECK(n == 0);
    vm_snapshot_list_free(list, n);
    berth_err_clear(&err);
    /* Invisible records answer at once: the op lock (held by us) is not
     * waited for, or this would hang. */
    CHECK(vm_registry_acquire(r, "web-1", BERTH_NO_DEADLINE, &held, &err) == -1);
    CHECK(err.code == BERTH_NOT_FOUND);
    CHECK(held == NULL);
    vm_registry_count_states(r, counts);
    CHECK(counts[VM_STATE_CREATED] == 0);

    /* A second reserve of the same id, reserved or published: already_exists. */
    berth_err_clear(&err);
    CHECK(vm_registry_reserve(r, &s, &rec2, &err) == -1);
    CHECK(err.code == BERTH_ALREADY_EXISTS);
    CHECK(strstr(err.msg, "'web-1'") != NULL);
    CHECK(rec2 == NULL);

    /* The reserve's data is a deep copy: the caller's buffers may go. */
    vm_registry_publish(r, rec);
    vm_registry_release(r, rec);
    CHECK(try_get(r, "web-1", &got, &code) == 0);
    CHECK_STR(got.id, "web-1");
    CHECK(got.id != s.id);
    CHECK_STR(got.customer_id, "cust");
    CHECK_STR(got.image, "busybox");
    CHECK(got.state == VM_STATE_CREATED);
    CHECK(got.config_len == s.config_len && memcmp(got.config, s.config, s.config_len) == 0);
    CHECK(got.n_ports == 1 && got.ports[0].host_port == 32768);
    CHECK(got.vcpu_count == 2 && got.memory_bytes == (1 << 26));
    vm_snapshot_release(&got);
    vm_snapshot_release(&got); /* released twice: still fine (zeroed) */

    berth_err_clear(&err);
    CHECK(vm_registry_list(r, &list, &n, &err) == 0);
    CHECK(n == 1);
    if (n == 1)
        CHECK_STR(list[0].id, "web-1");
    vm_snapshot_list_free(list, n);

    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "web-1", BERTH_NO_DEADLINE, &held, &err) == 0);
    if (held != NULL) {
        CHECK(vm_registry_read(r, held, &got, &err) == 0);
        CHECK_STR(got.id, "web-1");
        vm_snapshot_release(&got);
        vm_registry_release(r, held);
    }
    vm_registry_count_states(r, counts);
    CHECK(counts[VM_STATE_CREATED] == 1);

    berth_err_clear(&err);
    rec2 = NULL;
    CHECK(vm_registry_reserve(r, &s, &rec2, &err) == -1);
    CHECK(err.code == BERTH_ALREADY_EXISTS);

    /* Unknown ids. */
    CHECK(try_get(r, "nope", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "nope", BERTH_NO_DEADLINE, &held, &err) == -1 &&
          err.code == BERTH_NOT_FOUND);
    {
        /* An unknown id from a caller is echoed capped, without its CR/LF. */
        char long_id[301];
        memset(long_id, 'x', 300);
        long_id[300] = '\0';
        long_id[5] = '\n';
        berth_err_clear(&err);
        CHECK(vm_registry_acquire(r, long_id, BERTH_NO_DEADLINE, &held, &err) == -1);
        CHECK(err.code == BERTH_NOT_FOUND && strlen(err.msg) < 120 && !strchr(err.msg, '\n'));
    }
    vm_registry_free(r);
    vm_registry_free(NULL);
}

/* The CreateVm rollback: a reserved record removed before publish is gone,
 * its id free again, and nothing leaks. */
static void test_reserve_then_remove(void)
{
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot s = make_snap("tmp", VM_STATE_CREATED), got = {0};
    struct vm_record *rec = NULL;
    struct berth_err err;
    enum berth_code code;

    berth_err_clear(&err);
    CHECK(vm_registry_reserve(r, &s, &rec, &err) == 0);
    vm_registry_remove(r, rec);
    vm_registry_release(r, rec);
    CHECK(try_get(r, "tmp", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    CHECK(add_visible(r, "tmp", VM_STATE_RUNNING) == 0);
    CHECK(try_get(r, "tmp", &got, &code) == 0);
    CHECK(got.state == VM_STATE_RUNNING);
    vm_snapshot_release(&got);

    /* Removing a published record under its op lock. */
    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "tmp", BERTH_NO_DEADLINE, &rec, &err) == 0);
    vm_registry_remove(r, rec);
    /* Still held: reading it is fine until release. */
    CHECK(vm_registry_read(r, rec, &got, &err) == 0);
    CHECK_STR(got.id, "tmp");
    vm_snapshot_release(&got);
    vm_registry_release(r, rec);
    CHECK(try_get(r, "tmp", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    vm_registry_free(r);
}

struct waiter {
    struct vm_registry *r;
    const char *id;
    struct flag *about_to_acquire;
    struct flag *acquired;
    struct flag *holder_released; /* raised by the holder just before release */
    int64_t deadline;             /* 0: none */
    int rc;
    enum berth_code code;
    int saw_release;     /* holder_released was up when our acquire returned */
    enum vm_state state; /* the record's state as we read it */
};

static void *waiter_main(void *arg);

static void *waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct vm_record *rec = NULL;
    struct berth_err err;

    berth_err_clear(&err);
    flag_raise(w->about_to_acquire);
    w->rc =
        vm_registry_acquire(w->r, w->id, w->deadline ? w->deadline : BERTH_NO_DEADLINE, &rec, &err);
    w->code = err.code;
    w->saw_release = w->holder_released ? flag_is_set(w->holder_released) : 0;
    if (w->rc == 0) {
        struct vm_snapshot snap = {0};
        struct berth_err e2;
        berth_err_clear(&e2);
        if (vm_registry_read(w->r, rec, &snap, &e2) == 0)
            w->state = snap.state;
        vm_snapshot_release(&snap);
        vm_registry_release(w->r, rec);
    }
    if (w->acquired)
        flag_raise(w->acquired);
    return NULL;
}

/* A second acquire of one VM waits for the first holder's release. Proof:
 * the holder raises `released` only right before it releases, and writes
 * RUNNING while it holds; the waiter must see both. */
static void test_acquire_waits(void)
{
    struct vm_registry *r = vm_registry_new();
    struct vm_record *rec = NULL;
    struct flag about, acquired, released;
    struct waiter w = {0};
    struct vm_snapshot snap = {0};
    struct berth_err err;
    pthread_t t;

    flag_init(&about);
    flag_init(&acquired);
    flag_init(&released);
    CHECK(add_visible(r, "vm", VM_STATE_CREATED) == 0);
    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "vm", BERTH_NO_DEADLINE, &rec, &err) == 0);

    w.r = r;
    w.id = "vm";
    w.about_to_acquire = &about;
    w.acquired = &acquired;
    w.holder_released = &released;
    pthread_create(&t, NULL, waiter_main, &w);
    flag_wait(&about);
    /* Give a broken lock the chance to let the waiter through. */
    CHECK(flag_wait_ms(&acquired, 100) == 0);

    /* Lookups that take no op lock still answer while it is held. */
    CHECK(vm_registry_get(r, "vm", &snap, &err) == 0);
    CHECK(snap.state == VM_STATE_CREATED);
    vm_snapshot_release(&snap);

    CHECK(vm_registry_read(r, rec, &snap, &err) == 0);
    snap.state = VM_STATE_RUNNING;
    CHECK(vm_registry_write(r, rec, &snap, &err) == 0);
    vm_snapshot_release(&snap);
    flag_raise(&released);
    vm_registry_release(r, rec);

    flag_wait(&acquired);
    pthread_join(t, NULL);
    CHECK(w.rc == 0);
    CHECK(w.saw_release == 1);
    CHECK(w.state == VM_STATE_RUNNING);

    /* Different VMs do not wait for each other. */
    CHECK(add_visible(r, "other", VM_STATE_CREATED) == 0);
    CHECK(vm_registry_acquire(r, "vm", BERTH_NO_DEADLINE, &rec, &err) == 0);
    {
        struct flag about2, acquired2;
        struct waiter w2 = {0};
        flag_init(&about2);
        flag_init(&acquired2);
        w2.r = r;
        w2.id = "other";
        w2.about_to_acquire = &about2;
        w2.acquired = &acquired2;
        pthread_create(&t, NULL, waiter_main, &w2);
        flag_wait(&acquired2); /* would hang if "other" waited on "vm" */
        pthread_join(t, NULL);
        CHECK(w2.rc == 0);
        flag_destroy(&about2);
        flag_destroy(&acquired2);
    }
    vm_registry_release(r, rec);

    flag_destroy(&about);
    flag_destroy(&acquired);
    flag_destroy(&released);
    vm_registry_free(r);
}

/* Callers waiting in acquire when the holder removes the VM get not_found;
 * the record is freed exactly once by the last of them (ASan checks both the
 * use-after-free and the leak). Many rounds, several waiters each, so that
 * some waiters are surely parked on the op lock when the removal happens. */
static void test_remove_while_waiting(void)
{
    enum { ROUNDS = 40, WAITERS = 4 };
    struct vm_registry *r = vm_registry_new();
    int not_found = 0, other = 0;

    for (int round = 0; round < ROUNDS; round++) {
        struct vm_record *rec = NULL;
        struct flag about[WAITERS], done[WAITERS];
        struct waiter w[WAITERS];
        pthread_t t[WAITERS];
        struct vm_snapshot got = {0};
        enum berth_code code;
        struct berth_err err;

        CHECK(add_visible(r, "doomed", VM_STATE_RUNNING) == 0);
        berth_err_clear(&err);
        CHECK(vm_registry_acquire(r, "doomed", BERTH_NO_DEADLINE, &rec, &err) == 0);
        for (int i = 0; i < WAITERS; i++) {
            flag_init(&about[i]);
            flag_init(&done[i]);
            memset(&w[i], 0, sizeof(w[i]));
            w[i].r = r;
            w[i].id = "doomed";
            w[i].about_to_acquire = &about[i];
            w[i].acquired = &done[i];
            pthread_create(&t[i], NULL, waiter_main, &w[i]);
        }
        for (int i = 0; i < WAITERS; i++)
            flag_wait(&about[i]);
        /* None may get through while we hold it. */
        CHECK(flag_wait_ms(&done[0], 5) == 0);
        vm_registry_remove(r, rec);
        vm_registry_release(r, rec);
        for (int i = 0; i < WAITERS; i++) {
            pthread_join(t[i], NULL);
            if (w[i].rc == -1 && w[i].code == BERTH_NOT_FOUND)
                not_found++;
            else
                other++;
            flag_destroy(&about[i]);
            flag_destroy(&done[i]);
        }
        CHECK(try_get(r, "doomed", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    }
    CHECK(not_found == ROUNDS * WAITERS);
    CHECK(other == 0);
    /* The id is free again afterwards. */
    CHECK(add_visible(r, "doomed", VM_STATE_CREATED) == 0);
    vm_registry_free(r);
}

static void test_list_order(void)
{
    static const char *const ids[] = {"m", "a", "z", "b10", "b2", "B", "0", "a.b", "a-b", "a_b"};
    static const char *const sorted[] = {"0", "B", "a", "a-b", "a.b", "a_b", "b10", "b2", "m", "z"};
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot s = make_snap("hidden", VM_STATE_CREATED);
    struct vm_snapshot *list = NULL, *again = NULL;
    struct vm_record *reserved = NULL;
    struct berth_err err;
    size_t n = 0, n2 = 0;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++)
        CHECK(add_visible(r, ids[i], VM_STATE_CREATED) == 0);
    berth_err_clear(&err);
    CHECK(vm_registry_reserve(r, &s, &reserved, &err) == 0);
    CHECK(vm_registry_list(r, &list, &n, &err) == 0);
    CHECK(n == sizeof(sorted) / sizeof(sorted[0]));
    for (size_t i = 0; i < n && i < sizeof(sorted) / sizeof(sorted[0]); i++)
        CHECK_STR(list[i].id, sorted[i]);
    CHECK(vm_registry_list(r, &again, &n2, &err) == 0);
    CHECK(n2 == n);
    for (size_t i = 0; i < n && i < n2; i++)
        CHECK_STR(again[i].id, list[i].id);
    vm_snapshot_list_free(list, n);
    vm_snapshot_list_free(again, n2);
    vm_snapshot_list_free(NULL, 0);
    vm_registry_remove(r, reserved);
    vm_registry_release(r, reserved);

    /* An empty registry lists nothing, successfully. */
    {
        struct vm_registry *e = vm_registry_new();
        list = NULL;
        n = 7;
        CHECK(vm_registry_list(e, &list, &n, &err) == 0);
        CHECK(n == 0 && list != NULL);
        vm_snapshot_list_free(list, n);
        vm_registry_free(e);
    }
    vm_registry_free(r);
}

static void test_out_of_lock_updates(void)
{
    static const struct {
        const char *desc;
        enum vm_state to;
        int oom, exit_code;
        int64_t started_after; /* started_unix_ms expected afterwards */
    } rows[] = {
        {"running -> paused keeps the start time", VM_STATE_PAUSED, 0, 0, 1234},
        {"paused -> running keeps the start time", VM_STATE_RUNNING, 0, 0, 1234},
        {"died: shutdown with oom and exit code, start time cleared", VM_STATE_SHUTDOWN, 1, 137, 0},
    };
    struct vm_registry *r = vm_registry_new();
    struct vm_metrics m = {0};
    struct vm_snapshot got = {0};
    enum berth_code code;

    uint64_t gen = vm_registry_generation(r);

    CHECK(add_visible(r, "vm", VM_STATE_RUNNING) == 0);
    CHECK_MSG(vm_registry_generation(r) != gen, "a new VM moves the generation");
    m.cpu_percent = 12.5;
    m.memory_bytes = 4096;
    m.sampled_at_unix_ms = 99;
    gen = vm_registry_generation(r);
    CHECK(vm_registry_set_metrics(r, "vm", &m) == 0);
    CHECK_MSG(vm_registry_generation(r) == gen, "a sample does not move the generation");
    CHECK(vm_registry_set_metrics(r, "unknown", &m) == -1);
    CHECK(vm_registry_set_state(r, "unknown", VM_STATE_SHUTDOWN, 0, 0) == -1);
    CHECK(vm_registry_set_metrics(r, "", &m) == -1);
    CHECK(vm_registry_set_metrics(r, "vm", &m) == 0);
    CHECK(try_get(r, "vm", &got, &code) == 0);
    CHECK(got.metrics.cpu_percent == 12.5 && got.metrics.memory_bytes == 4096);
    CHECK(got.metrics.sampled_at_unix_ms == 99);
    vm_snapshot_release(&got);

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        gen = vm_registry_generation(r);
        CHECK_MSG(vm_registry_set_state(r, "vm", rows[i].to, rows[i].oom, rows[i].exit_code) == 0,
                  "%s", rows[i].desc);
        CHECK_MSG(vm_registry_generation(r) != gen, "%s: the generation moves", rows[i].desc);
        CHECK(try_get(r, "vm", &got, &code) == 0);
        CHECK_MSG(got.state == rows[i].to, "%s", rows[i].desc);
        CHECK_MSG(got.oom_killed == rows[i].oom && got.exit_code == rows[i].exit_code, "%s",
                  rows[i].desc);
        CHECK_MSG(got.started_unix_ms == rows[i].started_after, "%s: %lld", rows[i].desc,
                  (long long)got.started_unix_ms);
        vm_snapshot_release(&got);
    }

    /* Removed ids are unknown again. */
    {
        struct vm_record *rec = NULL;
        struct berth_err err;
        berth_err_clear(&err);
        CHECK(vm_registry_acquire(r, "vm", BERTH_NO_DEADLINE, &rec, &err) == 0);
        gen = vm_registry_generation(r);
        vm_registry_remove(r, rec);
        CHECK_MSG(vm_registry_generation(r) != gen, "a removal moves the generation");
        vm_registry_release(r, rec);
    }
    CHECK(vm_registry_set_metrics(r, "vm", &m) == -1);
    CHECK(vm_registry_set_state(r, "vm", VM_STATE_RUNNING, 0, 0) == -1);
    vm_registry_free(r);
}

/* write: the id never changes (it orders the array); cached metrics survive
 * a write that carries no sample and are replaced by one that does. */
static void test_write_keeps_id_and_metrics(void)
{
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot got = {0}, data;
    struct vm_metrics m = {0};
    struct vm_record *rec = NULL;
    struct berth_err err;
    enum berth_code code;

    CHECK(add_visible(r, "b", VM_STATE_CREATED) == 0);
    CHECK(add_visible(r, "a", VM_STATE_CREATED) == 0);
    CHECK(add_visible(r, "c", VM_STATE_CREATED) == 0);
    m.memory_bytes = 777;
    m.sampled_at_unix_ms = 5;
    CHECK(vm_registry_set_metrics(r, "b", &m) == 0);

    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "b", BERTH_NO_DEADLINE, &rec, &err) == 0);
    data = make_snap("zzz-not-b", VM_STATE_RUNNING);
    data.image = "nginx";
    CHECK(vm_registry_write(r, rec, &data, &err) == 0);
    vm_registry_release(r, rec);
    CHECK(try_get(r, "zzz-not-b", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    CHECK(try_get(r, "b", &got, &code) == 0);
    CHECK_STR(got.id, "b");
    CHECK_STR(got.image, "nginx");
    CHECK(got.state == VM_STATE_RUNNING);
    CHECK(got.metrics.memory_bytes == 777 && got.metrics.sampled_at_unix_ms == 5);
    vm_snapshot_release(&got);

    CHECK(vm_registry_acquire(r, "b", BERTH_NO_DEADLINE, &rec, &err) == 0);
    data = make_snap("b", VM_STATE_RUNNING);
    data.metrics.memory_bytes = 888;
    data.metrics.sampled_at_unix_ms = 6;
    CHECK(vm_registry_write(r, rec, &data, &err) == 0);
    vm_registry_release(r, rec);
    CHECK(try_get(r, "b", &got, &code) == 0);
    CHECK(got.metrics.memory_bytes == 888 && got.metrics.sampled_at_unix_ms == 6);
    vm_snapshot_release(&got);

    /* The order by id still holds. */
    {
        struct vm_snapshot *list = NULL;
        size_t n = 0;
        CHECK(vm_registry_list(r, &list, &n, &err) == 0);
        CHECK(n == 3);
        if (n == 3) {
            CHECK_STR(list[0].id, "a");
            CHECK_STR(list[1].id, "b");
            CHECK_STR(list[2].id, "c");
        }
        vm_snapshot_list_free(list, n);
    }
    vm_registry_free(r);
}

static void test_count_states(void)
{
    static const struct {
        const char *id;
        enum vm_state st;
    } rows[] = {
        {"c1", VM_STATE_CREATED},  {"c2", VM_STATE_CREATED}, {"r1", VM_STATE_RUNNING},
        {"r2", VM_STATE_RUNNING},  {"r3", VM_STATE_RUNNING}, {"p1", VM_STATE_PAUSED},
        {"s1", VM_STATE_SHUTDOWN},
    };
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot hidden = make_snap("hidden", VM_STATE_RUNNING);
    struct vm_record *rec = NULL;
    struct berth_err err;
    size_t counts[5];

    vm_registry_count_states(r, counts);
    for (int i = 0; i < 5; i++)
        CHECK(counts[i] == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        CHECK(add_visible(r, rows[i].id, rows[i].st) == 0);
    berth_err_clear(&err);
    CHECK(vm_registry_reserve(r, &hidden, &rec, &err) == 0); /* not counted */
    vm_registry_count_states(r, counts);
    CHECK(counts[VM_STATE_UNSPECIFIED] == 0);
    CHECK(counts[VM_STATE_CREATED] == 2);
    CHECK(counts[VM_STATE_RUNNING] == 3);
    CHECK(counts[VM_STATE_PAUSED] == 1);
    CHECK(counts[VM_STATE_SHUTDOWN] == 1);
    vm_registry_remove(r, rec);
    vm_registry_release(r, rec);

    CHECK(vm_registry_set_state(r, "r1", VM_STATE_SHUTDOWN, 0, 0) == 0);
    vm_registry_count_states(r, counts);
    CHECK(counts[VM_STATE_RUNNING] == 2);
    CHECK(counts[VM_STATE_SHUTDOWN] == 2);
    vm_registry_free(r);
}

/* Engine news applied without the op lock: only to the record whose
 * container it names. */
static void test_observe(void)
{
    static struct backend_port ports[] = {{8080, 40001, "tcp"}, {53, 40002, "udp"}};
    static const struct {
        const char *desc;
        const char *id, *container_id;
        enum vm_state state;
        int oom, exit_code;
        int want_rc;
        enum vm_state want_state;
        int want_oom, want_exit;
    } rows[] = {
        {"unknown id", "nope", "c0ffee", VM_STATE_SHUTDOWN, -1, -1, -1, VM_STATE_RUNNING, 0, 0},
        {"another container", "vm", "deadbeef", VM_STATE_SHUTDOWN, 1, 9, -1, VM_STATE_RUNNING, 0,
         0},
        {"UNSPECIFIED, -1, -1 keep everything", "vm", "c0ffee", VM_STATE_UNSPECIFIED, -1, -1, 0,
         VM_STATE_RUNNING, 0, 0},
        {"paused", "vm", "c0ffee", VM_STATE_PAUSED, -1, -1, 0, VM_STATE_PAUSED, 0, 0},
        {"died, oom-killed", "vm", "c0ffee", VM_STATE_SHUTDOWN, 1, 137, 0, VM_STATE_SHUTDOWN, 1,
         137},
        {"oom flag only", "vm", "c0ffee", VM_STATE_UNSPECIFIED, 0, -1, 0, VM_STATE_SHUTDOWN, 0,
         137},
    };
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot got = {0}, hidden = make_snap("hidden", VM_STATE_CREATED);
    struct vm_record *rec = NULL;
    struct berth_err err;
    enum berth_code code;

    CHECK(add_visible(r, "vm", VM_STATE_RUNNING) == 0);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct vm_observed o = {rows[i].container_id, rows[i].state, rows[i].oom,
                                rows[i].exit_code,    NULL,          BACKEND_HEALTH_UNKNOWN};
        CHECK_MSG(vm_registry_observe(r, rows[i].id, &o) == rows[i].want_rc, "%s", rows[i].desc);
        CHECK(try_get(r, "vm", &got, &code) == 0);
        CHECK_MSG(got.state == rows[i].want_state, "%s: %s", rows[i].desc,
                  vm_state_name(got.state));
        CHECK_MSG(got.oom_killed == rows[i].want_oom && got.exit_code == rows[i].want_exit,
                  "%s: oom %d exit %d", rows[i].desc, got.oom_killed, got.exit_code);
        if (got.state == VM_STATE_SHUTDOWN)
            CHECK_MSG(got.started_unix_ms == 0, "%s: start time kept", rows[i].desc);
        vm_snapshot_release(&got);
    }

    /* Back to running with details: ports, address and start time taken. */
    {
        struct backend_container c = {0};
        struct vm_observed o = {"c0ffee", VM_STATE_RUNNING, 0, -1, &c, BACKEND_HEALTH_UNKNOWN};
        c.ip_address = "172.17.0.5";
        c.mac_address = "";
        c.gateway = "172.17.0.1";
        c.ports = ports;
        c.n_ports = 2;
        c.started_unix_ms = 5555;
        CHECK(vm_registry_observe(r, "vm", &o) == 0);
        CHECK(try_get(r, "vm", &got, &code) == 0);
        CHECK(got.state == VM_STATE_RUNNING);
        CHECK_STR(got.ip_address, "172.17.0.5");
        CHECK_STR(got.gateway, "172.17.0.1");
        CHECK(got.n_ports == 2 && got.ports[1].host_port == 40002);
        CHECK(got.started_unix_ms == 5555);
        CHECK(got.oom_killed == 0);
        vm_snapshot_release(&got);
    }
    /* Reserved records hear nothing. */
    berth_err_clear(&err);
    CHECK(vm_registry_reserve(r, &hidden, &rec, &err) == 0);
    {
        struct vm_observed o = {"c0ffee", VM_STATE_RUNNING, -1, -1, NULL, BACKEND_HEALTH_UNKNOWN};
        CHECK(vm_registry_observe(r, "hidden", &o) == -1);
    }
    vm_registry_remove(r, rec);
    vm_registry_release(r, rec);
    vm_registry_free(r);
}

/* A VM removed behind berthd's back: forgotten at once, while callers that
 * hold or wait for it keep a valid record (ASan checks). */
static void test_forget(void)
{
    struct vm_registry *r = vm_registry_new();
    struct vm_snapshot got = {0};
    struct vm_record *rec = NULL;
    struct flag about, done;
    struct waiter w = {0};
    struct berth_err err;
    enum berth_code code;
    pthread_t t;

    CHECK(add_visible(r, "a", VM_STATE_RUNNING) == 0);
    CHECK(add_visible(r, "b", VM_STATE_RUNNING) == 0);
    CHECK(vm_registry_forget(r, "a", "not-its-container") == -1);
    CHECK(vm_registry_forget(r, "zzz", "c0ffee") == -1);
    CHECK(try_get(r, "a", &got, &code) == 0);
    vm_snapshot_release(&got);

    /* Nobody holds "a": gone at once. */
    CHECK(vm_registry_forget(r, "a", "c0ffee") == 0);
    CHECK(try_get(r, "a", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    CHECK(vm_registry_forget(r, "a", "c0ffee") == -1);

    /* "b" is held, and someone waits for it. */
    flag_init(&about);
    flag_init(&done);
    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "b", BERTH_NO_DEADLINE, &rec, &err) == 0);
    w.r = r;
    w.id = "b";
    w.about_to_acquire = &about;
    w.acquired = &done;
    pthread_create(&t, NULL, waiter_main, &w);
    flag_wait(&about);
    CHECK(flag_wait_ms(&done, 20) == 0);
    CHECK(vm_registry_forget(r, "b", "c0ffee") == 0);
    CHECK(try_get(r, "b", &got, &code) == -1 && code == BERTH_NOT_FOUND);
    CHECK(vm_registry_read(r, rec, &got, &err) == 0); /* the holder's record is intact */
    CHECK_STR(got.id, "b");
    vm_snapshot_release(&got);
    vm_registry_release(r, rec);
    pthread_join(t, NULL);
    CHECK(w.rc == -1 && w.code == BERTH_NOT_FOUND);
    flag_destroy(&about);
    flag_destroy(&done);

    /* The ids are free again. */
    CHECK(add_visible(r, "a", VM_STATE_CREATED) == 0);
    CHECK(add_visible(r, "b", VM_STATE_CREATED) == 0);
    vm_registry_free(r);
}

/* ---- many threads ------------------------------------------------------ */

enum { MUT_THREADS = 8, MUT_IDS = 40, MUT_ROUNDS = 6, LIST_THREADS = 2 };

struct mut_arg {
    struct vm_registry *r;
    int idx;
    int errors;
};

struct lister_arg {
    struct vm_registry *r;
    struct flag *stop;
    int errors;
    int lists;
};

static void *mutator_main(void *arg);
static void *lister_main(void *arg);

/* Each thread owns ids "t<idx>-<k>": inserts them all, removes the odd ones,
 * checks what it sees of its own ids, and leaves the even ones. */
static void *mutator_main(void *arg)
{
    struct mut_arg *a = arg;
    char id[32];

    for (int round = 0; round < MUT_ROUNDS; round++) {
        for (int k = 0; k < MUT_IDS; k++) {
            snprintf(id, sizeof(id), "t%d-%03d", a->idx, k);
            if (round > 0 && k % 2 == 0)
                continue; /* still there from round 0 */
            if (add_visible(a->r, id, VM_STATE_CREATED) < 0)
                a->errors++;
        }
        for (int k = 1; k < MUT_IDS; k += 2) {
            struct vm_record *rec = NULL;
            struct berth_err err;
            snprintf(id, sizeof(id), "t%d-%03d", a->idx, k);
            berth_err_clear(&err);
            if (vm_registry_acquire(a->r, id, BERTH_NO_DEADLINE, &rec, &err) < 0) {
                a->errors++;
                continue;
            }
            vm_registry_remove(a->r, rec);
            vm_registry_release(a->r, rec);
        }
        for (int k = 0; k < MUT_IDS; k++) {
            struct vm_snapshot got = {0};
            enum berth_code code;
            int rc;
            snprintf(id, sizeof(id), "t%d-%03d", a->idx, k);
            rc = try_get(a->r, id, &got, &code);
            if (k % 2 == 0 ? rc != 0 : (rc != -1 || code != BERTH_NOT_FOUND))
                a->errors++;
            vm_snapshot_release(&got);
        }
    }
    return NULL;
}

static void *lister_main(void *arg)
{
    struct lister_arg *a = arg;

    while (!flag_is_set(a->stop)) {
        struct vm_snapshot *list = NULL;
        struct berth_err err;
        size_t n = 0, counts[5];
        berth_err_clear(&err);
        if (vm_registry_list(a->r, &list, &n, &err) < 0) {
            a->errors++;
            break;
        }
        for (size_t i = 0; i + 1 < n; i++)
            if (strcmp(list[i].id, list[i + 1].id) >= 0)
                a->errors++;
        for (size_t i = 0; i < n; i++)
            if (list[i].id[0] != 't' || list[i].state != VM_STATE_CREATED)
                a->errors++;
        vm_snapshot_list_free(list, n);
        vm_registry_count_states(a->r, counts);
        if (counts[VM_STATE_RUNNING] != 0)
            a->errors++;
        a->lists++;
    }
    return NULL;
}

static void test_concurrent_insert_remove_list(void)
{
    struct vm_registry *r = vm_registry_new();
    struct mut_arg muts[MUT_THREADS];
    struct lister_arg listers[LIST_THREADS];
    pthread_t mt[MUT_THREADS], lt[LIST_THREADS];
    struct flag stop;
    struct vm_snapshot *list = NULL;
    struct berth_err err;
    size_t n = 0;

    flag_init(&stop);
    for (int i = 0; i < LIST_THREADS; i++) {
        listers[i] = (struct lister_arg){r, &stop, 0, 0};
        pthread_create(&lt[i], NULL, lister_main, &listers[i]);
    }
    for (int i = 0; i < MUT_THREADS; i++) {
        muts[i] = (struct mut_arg){r, i, 0};
        pthread_create(&mt[i], NULL, mutator_main, &muts[i]);
    }
    for (int i = 0; i < MUT_THREADS; i++) {
        pthread_join(mt[i], NULL);
        CHECK_MSG(muts[i].errors == 0, "mutator %d: %d errors", i, muts[i].errors);
    }
    flag_raise(&stop);
    for (int i = 0; i < LIST_THREADS; i++) {
        pthread_join(lt[i], NULL);
        CHECK_MSG(listers[i].errors == 0, "lister %d: %d errors", i, listers[i].errors);
        CHECK(listers[i].lists > 0);
    }

    /* Exactly the even ids of every thread are left, in order. */
    berth_err_clear(&err);
    CHECK(vm_registry_list(r, &list, &n, &err) == 0);
    CHECK(n == (size_t)MUT_THREADS * (MUT_IDS / 2));
    for (size_t i = 0; i < n; i++) {
        char want[32];
        snprintf(want, sizeof(want), "t%zu-%03zu", i / (MUT_IDS / 2), (i % (MUT_IDS / 2)) * 2);
        CHECK_STR(list[i].id, want);
    }
    vm_snapshot_list_free(list, n);
    flag_destroy(&stop);
    vm_registry_free(r);
}

/* A waiter gives up when its deadline passes while another call holds the
 * VM, and leaves the record as it was: the holder and later callers go on. */
static void test_acquire_deadline(void)
{
    struct vm_registry *r = vm_registry_new();
    struct vm_record *rec = NULL;
    struct flag about, acquired;
    struct waiter w = {0};
    struct berth_err err;
    pthread_t t;

    flag_init(&about);
    flag_init(&acquired);
    CHECK(add_visible(r, "vm", VM_STATE_RUNNING) == 0);
    berth_err_clear(&err);
    CHECK(vm_registry_acquire(r, "vm", BERTH_NO_DEADLINE, &rec, &err) == 0);

    w.r = r;
    w.id = "vm";
    w.about_to_acquire = &about;
    w.acquired = &acquired;
    w.deadline = berth_now_ms() + 50;
    pthread_create(&t, NULL, waiter_main, &w);
    flag_wait(&acquired); /* returns although the holder never lets go */
    pthread_join(t, NULL);
    CHECK(w.rc == -1);
    CHECK(w.code == BERTH_DEADLINE_EXCEEDED);
    CHECK(berth_now_ms() >= w.deadline);

    vm_registry_release(r, rec);
    CHECK(vm_registry_acquire(r, "vm", berth_now_ms() + 1000, &rec, &err) == 0);
    vm_registry_release(r, rec);
    flag_destroy(&about);
    flag_destroy(&acquired);
    vm_registry_free(r);
}

/* A call that acted on the Engine commits its state unless the Engine told
 * of a change meanwhile; news that changes nothing does not count. */
static void test_commit_after_news(void)
{
    static const struct {
        const char *desc;
        enum vm_state news; /* UNSPECIFIED: no news during the call */
        int exit_code;      /* of the news */
        enum vm_state want; /* state after the commit of RUNNING */
    } rows[] = {
        {"no news: the call's state", VM_STATE_UNSPECIFIED, -1, VM_STATE_RUNNING},
        {"the container died meanwhile: kept", VM_STATE_SHUTDOWN, 1, VM_STATE_SHUTDOWN},
        {"news that confirms the old state: the call's", VM_STATE_CREATED, -1, VM_STATE_RUNNING},
    };

    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct vm_registry *r = vm_registry_new();
        struct vm_record *rec = NULL;
        struct vm_snapshot snap = {0}, got = {0};
        struct berth_err err;
        enum berth_code code;
        uint64_t stamp;

        berth_err_clear(&err);
        CHECK(add_visible(r, "vm", VM_STATE_CREATED) == 0);
        CHECK(vm_registry_acquire(r, "vm", BERTH_NO_DEADLINE, &rec, &err) == 0);
        stamp = vm_registry_stamp(r, rec);
        CHECK(vm_registry_read(r, rec, &snap, &err) == 0);
        if (rows[i].news != VM_STATE_UNSPECIFIED) {
            struct vm_observed o = {"c0ffee",          rows[i].news, -1,
                                    rows[i].exit_code, NULL,         BACKEND_HEALTH_UNKNOWN};
            CHECK(vm_registry_observe(r, "vm", &o) == 0);
        }
        snap.state = VM_STATE_RUNNING;
        snap.started_unix_ms = 99;
        CHECK(vm_registry_commit(r, rec, &snap, stamp, &err) == 0);
        vm_registry_release(r, rec);
        CHECK(try_get(r, "vm", &got, &code) == 0);
        CHECK_MSG(got.state == rows[i].want, "%s: state %d", rows[i].desc, got.state);
        if (rows[i].news == VM_STATE_SHUTDOWN)
            CHECK_MSG(got.exit_code == rows[i].exit_code && got.started_unix_ms == 0, "%s",
                      rows[i].desc);
        vm_snapshot_release(&got);
        vm_snapshot_release(&snap);
        vm_registry_free(r);
    }
}

/* What holds the registry's lock in test_alive: a snapshot whose `then`
 * waits until it is told to go. */
struct holder {
    struct vm_registry *r;
    struct flag holding, release;
};

static int hold_then(void *arg)
{
    struct holder *h = arg;

    flag_raise(&h->holding);
    flag_wait(&h->release);
    return 0;
}

static void *holder_main(void *arg)
{
    struct holder *h = arg;

    (void)vm_registry_snapshot(h->r, NULL, NULL, hold_then, h);
    return NULL;
}

/* The lock free: alive at once. Held: not alive once the deadline passes,
 * and not before it. Given back: alive again. */
static void test_alive(void)
{
    struct holder h;
    pthread_t t;
    int64_t t0;

    h.r = vm_registry_new();
    flag_init(&h.holding);
    flag_init(&h.release);
    CHECK(vm_registry_alive(h.r, berth_now_ms() + 100) == 0);
    CHECK(pthread_create(&t, NULL, holder_main, &h) == 0);
    flag_wait(&h.holding);
    t0 = berth_now_ms();
    CHECK(vm_registry_alive(h.r, t0 + 150) == -1);
    CHECK_MSG(berth_now_ms() - t0 >= 140, "gave up after %lld ms",
              (long long)(berth_now_ms() - t0));
    flag_raise(&h.release);
    pthread_join(t, NULL);
    CHECK(vm_registry_alive(h.r, berth_now_ms() + 100) == 0);
    flag_destroy(&h.holding);
    flag_destroy(&h.release);
    vm_registry_free(h.r);
}

int main(void)
{
    test_reserve_publish();
    test_reserve_then_remove();
    test_acquire_waits();
    test_acquire_deadline();
    test_remove_while_waiting();
    test_list_order();
    test_out_of_lock_updates();
    test_write_keeps_id_and_metrics();
    test_count_states();
    test_observe();
    test_forget();
    test_commit_after_news();
    test_concurrent_insert_remove_list();
    test_alive();
    return test_summary("test_vm_registry");
}
