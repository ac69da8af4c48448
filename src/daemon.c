/* The daemon struct everything hangs off: modules started in order and
 * stopped in reverse, the non-RPC HTTP routes, and the Engine watcher thread
 * that rebuilds the registry whenever the Engine (re)appears. */
#include "berth/daemon.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <systemd/sd-daemon.h>

#include "berth/arena.h"
#include "berth/auth.h"
#include "berth/backend.h"
#include "berth/clock.h"
#include "berth/collector.h"
#include "berth/connect.h"
#include "berth/docker_backend.h"
#include "berth/event_bus.h"
#include "berth/event_service.h"
#include "berth/replica_service.h"
#include "berth/http_server.h"
#include "berth/lock.h"
#include "berth/log_service.h"
#include "berth/log.h"
#include "berth/memory_backend.h"
#include "berth/swarm_backend.h"
#include "berth/prometheus.h"
#include "berth/router.h"
#include "berth/vault_client.h"
#include "berth/vm_registry.h"
#include "berth/vm_service.h"

#define WATCH_INTERVAL_MS 1000
#define PING_TIMEOUT_MS 1000
#define ENGINE_PROBE_INTERVAL_MS 500 /* how often the backend checks its Engine answers */
#define WATCH_BACKOFF_MIN_MS 250
#define WATCH_BACKOFF_MAX_MS 2000
#define WATCH_STABLE_MS 5000 /* a stream that lasted this long resets the backoff */

struct berth_daemon {
    const struct berth_config *cfg; /* borrowed, read-only: the start's */
    /* What is in effect: cfg, then each option a reload applied. The
     * reloading thread's only. */
    struct berth_config live;
    struct backend backend;
    struct vm_registry *vms;
    struct vm_service *vm_svc;
    struct replica_service *replica_svc;
    struct vault *vault; /* NULL without --vault-url */
    struct log_service *log_svc;
    struct event_bus *bus; /* changes of managed objects, to watchers */
    struct event_service *event_svc;
    struct rpc_streams *streams; /* open server streams and their thread */
    struct router *router;
    struct connect_config connect;
    struct http_server *http;
    struct auth *auth;           /* who may call; read by the HTTP threads */
    struct collector *collector; /* NULL when the backend offers no stats */
    struct prometheus *prom;

    pthread_t watcher;
    int watcher_started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;            /* guarded by lock */
    atomic_int stop_flag;    /* set with stopping; ends the event stream */
    int64_t events_since_ns; /* watcher thread only: resume point of the stream */
};

static int backend_open(const struct berth_config *cfg, int64_t stats_files, struct backend *out,
                        struct berth_err *err);
static void on_http(void *ctx, const struct http_request *req, struct http_response *resp,
                    struct arena *arena);
static enum http_run classify_http(void *ctx, const struct http_request *req);
static int64_t raise_fd_limit(const struct berth_config *cfg);
static void serve_readyz(struct berth_daemon *d, struct http_response *resp);
static void set_request_id(struct http_response *resp, const char *request_id, struct arena *arena);
static int refuse_caller(struct berth_daemon *d, const struct http_request *req, int need_caller,
                         const char *request_id, struct http_response *resp);
static void *watcher_main(void *arg);
static int watcher_wait(struct berth_daemon *d, int64_t ms);
static int64_t up_wait_ms(struct berth_daemon *d, int64_t backoff_ms);
static void on_engine_event(void *arg, const struct backend_event *ev);
static void replica_sync(struct berth_daemon *d);
static int vault_open(const struct berth_config *cfg, struct vault **out, struct berth_err *err);
static int decrypt_with_vault(void *ctx, const char *keyring, const char *encrypted,
                              int64_t deadline, struct arena *a, char **plaintext,
                              struct berth_err *err);

/* stats_files: files the metrics may keep open (<= 0: none). */
static int backend_open(const struct berth_config *cfg, int64_t stats_files, struct backend *out,
                        struct berth_err *err)
{
    if (strcmp(cfg->backend, "memory") == 0)
        return memory_backend_new(out, err);
    struct docker_backend_config dc = {
        .socket_path = cfg->docker_socket,
        .publish_address = cfg->publish_address,
        .pids_limit = cfg->pids_limit,
        .stats_interval_ms = cfg->metrics_interval_s * 1000,
        .probe_interval_ms = ENGINE_PROBE_INTERVAL_MS,
        .cap_drop = cfg->cap_drop,
        .log_max_size = cfg->log_max_size,
        .log_max_files = cfg->log_max_files,
        .default_memory_bytes = cfg->default_memory_mib > 0 ? cfg->default_memory_mib << 20 : -1,
        .instance_id = cfg->instance_id,
        .allowed_registries = cfg->allowed_registries,
        .auth_file = cfg->registry_auth_file,
        .auth_file_optional =
            cfg->registry_auth_file != NULL &&
            strcmp(cfg->registry_auth_file, CONFIG_DEFAULT_REGISTRY_AUTH_FILE) == 0,
        .pull_progress_timeout_ms = cfg->pull_progress_timeout_s * 1000,
        .pull_timeout_ms = cfg->pull_timeout_s * 1000,
        .cgroup_root = cfg->metrics_cgroup_root,
        .proc_root = cfg->metrics_proc_root,
        .stats_max_open_files = stats_files > 0 ? stats_files : -1,
    };
    if (strcmp(cfg->backend, "swarm") == 0) {
        struct swarm_backend_config sc = {SWARM_PUBLISH_HOST};

        if (swarm_publish_mode_parse(cfg->swarm_publish_mode, &sc.publish_mode) < 0)
            return berth_err_set(err, BERTH_INVALID_ARGUMENT,
                                 "swarm-publish-mode '%.64s': expected host or ingress",
                                 cfg->swarm_publish_mode);
        return swarm_backend_new(&dc, &sc, out, err);
    }
    return docker_backend_new(&dc, out, err);
}

/* The vault that decrypts deployments' secrets; none (NULL) without
 * --vault-url. */
static int vault_open(const struct berth_config *cfg, struct vault **out, struct berth_err *err)
{
    struct vault_config vc = {cfg->vault_url,         cfg->vault_token_file, cfg->vault_ca_file,
                              cfg->vault_client_cert, cfg->vault_client_key, cfg->vault_timeout_ms};

    *out = NULL;
    if (cfg->vault_url[0] == '\0')
        return 0;
    return vault_new(&vc, out, err);
}

static int decrypt_with_vault(void *ctx, const char *keyring, const char *encrypted,
                              int64_t deadline, struct arena *a, char **plaintext,
                              struct berth_err *err)
{
    return vault_decrypt(ctx, keyring, encrypted, deadline, a, plaintext, err);
}

int daemon_start(const struct berth_config *cfg, struct berth_daemon **out, struct berth_err *err)
{
    struct berth_daemon *d = calloc(1, sizeof(*d));
    struct vm_service_config vc;
    struct replica_service_config gc;
    struct http_server_config hc;
    int64_t stats_files;

    if (d == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    d->cfg = cfg;
    stats_files = raise_fd_limit(cfg);
    lock_init(&d->lock);
    pthread_cond_init(&d->wake, NULL);
    if (config_copy(&d->live, cfg, err) < 0)
        goto fail;
    if (docker_backend_global_init(err) < 0)
        goto fail;
    if (backend_open(cfg, stats_files, &d->backend, err) < 0)
        goto fail;
    d->vms = vm_registry_new();
    d->router = router_new();
    vc.stop_timeout_s = (int)cfg->stop_timeout_s;
    vc.ready_wait_ms = cfg->ready_wait_ms;
    vc.max_vms = cfg->max_vms;
    vc.max_vms_per_customer = cfg->max_vms_per_customer;
    if (vm_service_parse_port_range("host-port-range", cfg->host_port_range, &vc.host_port_min,
                                    &vc.host_port_max, err) < 0)
        goto fail;
    d->vm_svc = d->vms ? vm_service_new(&vc, &d->backend, d->vms) : NULL;
    if (d->vms == NULL || d->router == NULL || d->vm_svc == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    gc.gateway_port = (int)cfg->gateway_port;
    gc.deployment_port = (int)cfg->deployment_port;
    gc.advertise_host = cfg->advertise_host;
    gc.publish_address = cfg->publish_address;
    gc.max_replicas_total = cfg->max_replicas_total;
    gc.update_parallelism = (unsigned)cfg->update_parallelism;
    gc.update_ready_timeout_ms = cfg->update_health_timeout_s * 1000;
    gc.update_min_ready_ms = cfg->update_min_ready_ms;
    gc.update_drain_ms = cfg->update_drain_ms;
    gc.region = cfg->region;
    if (vault_open(cfg, &d->vault, err) < 0)
        goto fail;
    gc.decryptor = (struct krane_decryptor){d->vault ? decrypt_with_vault : NULL, d->vault};
    d->replica_svc = replica_service_new(&gc, &d->backend);
    if (d->replica_svc == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (replica_service_register(d->replica_svc, d->router) < 0) {
        berth_err_set(err, BERTH_INTERNAL, "krane service routes missing from the RPC table");
        goto fail;
    }
    if (vm_service_register(d->vm_svc, d->router) < 0) {
        berth_err_set(err, BERTH_INTERNAL, "vm service routes missing from the RPC table");
        goto fail;
    }
    {
        struct log_service_config lc = {(size_t)cfg->max_log_bytes};

        d->log_svc = log_service_new(&lc, &d->backend, d->vms);
        if (d->log_svc == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
        if (log_service_register(d->log_svc, d->router) < 0) {
            berth_err_set(err, BERTH_INTERNAL, "log service routes missing from the RPC table");
            goto fail;
        }
    }
    {
        struct event_service_sources es = {0};

        d->bus = event_bus_new();
        es.bus = d->bus;
        es.vms = d->vms;
        es.replicas = d->replica_svc != NULL ? replica_service_cache(d->replica_svc) : NULL;
        d->event_svc = d->bus != NULL ? event_service_new(&es) : NULL;
        if (d->event_svc == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
        if (event_service_register(d->event_svc, d->router) < 0) {
            berth_err_set(err, BERTH_INTERNAL, "event service route missing from the RPC table");
            goto fail;
        }
        vm_registry_set_listener(d->vms, event_service_vm_changed, d->bus);
        if (es.replicas != NULL)
            replica_cache_set_listener(es.replicas, event_service_replica_changed, d->bus);
    }
    if (rpc_streams_start((size_t)cfg->stream_queue_bytes, &d->streams, err) < 0)
        goto fail;
    d->connect.router = d->router;
    d->connect.max_body_bytes = (size_t)cfg->max_body_bytes;
    d->connect.streams = d->streams;
    if (backend_has_stats(&d->backend)) {
        struct collector_config mc = {cfg->metrics_interval_s * 1000};

        if (collector_start(&mc, &d->backend, d->vms, &d->collector, err) < 0)
            goto fail;
    }
    {
        struct prometheus_sources ps = {d->router, d->vms, &d->backend, d->collector,
                                        PING_TIMEOUT_MS};

        d->prom = prometheus_new(&ps);
        if (d->prom == NULL) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto fail;
        }
    }

    {
        struct auth_config ac = {cfg->auth_token_file, cfg->tls_allowed_ids,
                                 cfg->tls_client_ca[0] != '\0'};

        if (auth_new(&ac, &d->auth, err) < 0)
            goto fail;
    }
    memset(&hc, 0, sizeof(hc));
    hc.listen = cfg->listen;
    hc.max_body_bytes = (size_t)cfg->max_body_bytes;
    hc.max_connections = (unsigned)cfg->max_connections;
    hc.idle_timeout_s = (unsigned)cfg->idle_timeout_s;
    hc.read_timeout_s = (unsigned)cfg->read_timeout_s;
    hc.max_connections_per_ip = (unsigned)cfg->max_connections_per_ip;
    hc.connection_memory = (size_t)cfg->connection_memory;
    hc.socket_mode = (unsigned)cfg->socket_mode;
    hc.socket_group = cfg->socket_group;
    hc.tls_cert = cfg->tls_cert;
    hc.tls_key = cfg->tls_key;
    hc.tls_client_ca = cfg->tls_client_ca;
    hc.auth = d->auth;
    hc.event_threads = (unsigned)cfg->http_threads;
    hc.workers = (unsigned)cfg->workers;
    hc.classify = classify_http;
    if (http_server_start(&hc, on_http, d, &d->http, err) < 0)
        goto fail;
    if (!auth_required(d->auth) && !http_server_is_local(d->http))
        log_warn("server.insecure_listen",
                 "address=%s reason=\"anyone who reaches this address may call every RPC\"",
                 http_server_address(d->http));
    if (pthread_create(&d->watcher, NULL, watcher_main, d) != 0) {
        berth_err_set(err, BERTH_INTERNAL, "cannot start the engine watcher thread");
        goto fail;
    }
    d->watcher_started = 1;
    log_info("server.listening", "address=%s backend=%s tls=%s auth=%s",
             http_server_address(d->http), d->backend.ops->name,
             cfg->tls_cert[0] != '\0' ? "on" : "off", auth_required(d->auth) ? "on" : "off");
    sd_notify(0, "READY=1");
    *out = d;
    return 0;
fail:
    daemon_stop(d);
    return -1;
}

const char *daemon_address(const struct berth_daemon *d)
{
    return http_server_address(d->http);
}

int daemon_alive(const struct berth_daemon *d, int64_t timeout_ms, struct berth_err *err)
{
    /* The registry's lock first: the RPCs and /healthz all pass it. */
    if (vm_registry_alive(d->vms, berth_now_ms() + timeout_ms) < 0)
        return berth_err_set(err, BERTH_UNAVAILABLE, "the VM registry's lock was held for %lld ms",
                             (long long)timeout_ms);
    return http_server_alive(d->http, timeout_ms, err);
}

void daemon_stop(struct berth_daemon *d)
{
    if (d == NULL)
        return;
    sd_notify(0, "STOPPING=1");
    if (d->http) {
        http_server_quiesce(d->http);
        if (http_server_wait_idle(d->http, berth_now_ms() + d->cfg->shutdown_grace_s * 1000) < 0)
            log_warn("server.stop", "reason=\"requests still under way after the grace period\"");
    }
    /* The watcher learns it is stopping before its Engine calls start to
     * fail, so it ends quietly instead of reporting an Engine outage. */
    lock_take(&d->lock);
    d->stopping = 1;
    atomic_store(&d->stop_flag, 1);
    pthread_cond_broadcast(&d->wake);
    lock_give(&d->lock);
    /* Nothing needs the Engine any more: whatever still waits on it (a call
     * past the grace period, the watcher's sync) is cut short, so every
     * thread can be joined. */
    backend_cancel_all(&d->backend);
    if (d->watcher_started)
        pthread_join(d->watcher, NULL);
    http_server_free(d->http);
    /* Every stream has ended with the server; their hooks let go of the
     * bus before it goes. */
    rpc_streams_stop(d->streams);
    if (d->vms != NULL)
        vm_registry_set_listener(d->vms, NULL, NULL);
    if (d->replica_svc != NULL)
        replica_cache_set_listener(replica_service_cache(d->replica_svc), NULL, NULL);
    event_service_free(d->event_svc);
    event_bus_free(d->bus);
    auth_free(d->auth);
    prometheus_free(d->prom);
    collector_stop(d->collector);
    replica_service_free(d->replica_svc);
    vault_free(d->vault);
    log_service_free(d->log_svc);
    vm_service_free(d->vm_svc);
    router_free(d->router);
    vm_registry_free(d->vms);
    backend_destroy(&d->backend);
    docker_backend_global_cleanup();
    pthread_cond_destroy(&d->wake);
    lock_destroy(&d->lock);
    config_release(&d->live);
    free(d);
}

/* ---- SIGHUP ------------------------------------------------------------ */

/* Options a reload applies; a change of any other waits for a restart. */
static const char *const reload_applies[] = {
    "log-level",       "log-format", "max-vms", "max-vms-per-customer", "max-replicas-total",
    "auth-token-file", "tls-cert",   "tls-key", "registry-auth-file",
};

/* One reload: what changed, what was applied, what waits for a restart. */
struct reload {
    struct berth_daemon *d;
    const struct berth_config *fresh;
    struct buf applied, restart, failed; /* comma lists of option names */
    int log_level, log_format, vm_limits, replica_limit, tokens, tls, registry;
};

static void reload_note(struct buf *list, const char *name)
{
    if (buf_printf(list, NULL, "%s%s", list->len > 0 ? "," : "", name) < 0)
        return; /* a longer list than the options there are: cannot happen */
}

/* An option differs between what is in effect and the file read now. */
static void reload_option(void *arg, const char *name)
{
    struct reload *r = arg;
    size_t i;

    for (i = 0; i < sizeof(reload_applies) / sizeof(reload_applies[0]); i++)
        if (strcmp(reload_applies[i], name) == 0)
            break;
    if (i == sizeof(reload_applies) / sizeof(reload_applies[0])) {
        reload_note(&r->restart, name);
        return;
    }
    if (strcmp(name, "log-level") == 0)
        r->log_level = 1;
    else if (strcmp(name, "log-format") == 0)
        r->log_format = 1;
    else if (strncmp(name, "max-vms", 7) == 0)
        r->vm_limits = 1;
    else if (strcmp(name, "max-replicas-total") == 0)
        r->replica_limit = 1;
    else if (strcmp(name, "auth-token-file") == 0)
        r->tokens = 1;
    else if (strncmp(name, "tls-", 4) == 0)
        r->tls = 1;
    else
        r->registry = 1;
}

/* The option now holds the fresh value: in effect, and listed. */
static void reload_took(struct reload *r, const char *name)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (config_copy_option(&r->d->live, r->fresh, name, &err) < 0)
        return; /* out of memory: the next reload applies it again */
    reload_note(&r->applied, name);
}

/* The token file: its name may change while tokens stay on; turning them
 * on or off is a restart. Read again either way. */
static void reload_tokens(struct reload *r)
{
    const struct berth_config *live = &r->d->live, *fresh = r->fresh;
    const char *path = NULL;
    struct berth_err err;
    struct log_quoted lq;

    if (fresh != NULL && r->tokens) {
        if ((live->auth_token_file[0] == '\0') != (fresh->auth_token_file[0] == '\0'))
            reload_note(&r->restart, "auth-token-file");
        else
            path = fresh->auth_token_file;
    }
    berth_err_clear(&err);
    if (auth_reload_file(r->d->auth, path, &err) < 0) {
        log_warn("auth.reload", "code=%s error=%s reason=\"keeping the tokens in use\"",
                 berth_code_name(err.code), log_quote(&lq, err.msg));
        if (path != NULL)
            reload_note(&r->failed, "auth-token-file");
        return;
    }
    if (path != NULL)
        reload_took(r, "auth-token-file");
    if (live->auth_token_file[0] != '\0')
        log_info("auth.reload", "code=ok tokens=%zu", auth_token_count(r->d->auth));
}

/* The certificate and key: other files while TLS stays on; on or off is a
 * restart. Read again either way. */
static void reload_tls(struct reload *r)
{
    const struct berth_config *live = &r->d->live, *fresh = r->fresh;
    struct berth_err err;
    struct log_quoted lq;
    int rc, files = 0;

    if (fresh != NULL && r->tls) {
        if ((live->tls_cert[0] == '\0') != (fresh->tls_cert[0] == '\0')) {
            if (strcmp(live->tls_cert, fresh->tls_cert) != 0)
                reload_note(&r->restart, "tls-cert");
            if (strcmp(live->tls_key, fresh->tls_key) != 0)
                reload_note(&r->restart, "tls-key");
        } else {
            files = 1;
        }
    }
    berth_err_clear(&err);
    rc = files ? http_server_reload_tls_files(r->d->http, fresh->tls_cert, fresh->tls_key, &err)
               : http_server_reload_tls(r->d->http, &err);
    if (rc < 0) {
        log_warn("tls.reload", "code=%s error=%s reason=\"keeping the certificate in use\"",
                 berth_code_name(err.code), log_quote(&lq, err.msg));
        if (files) {
            if (strcmp(live->tls_cert, fresh->tls_cert) != 0)
                reload_note(&r->failed, "tls-cert");
            if (strcmp(live->tls_key, fresh->tls_key) != 0)
                reload_note(&r->failed, "tls-key");
        }
        return;
    }
    if (files) {
        if (strcmp(live->tls_cert, fresh->tls_cert) != 0)
            reload_took(r, "tls-cert");
        if (strcmp(live->tls_key, fresh->tls_key) != 0)
            reload_took(r, "tls-key");
    }
    if (http_server_tls_on(r->d->http))
        log_info("tls.reload", "code=ok");
}

/* Registry credentials: the file named now (or none), read again. */
static void reload_registry(struct reload *r)
{
    const char *path = r->fresh != NULL && r->registry ? r->fresh->registry_auth_file : NULL;
    struct berth_err err;
    struct log_quoted lq;

    berth_err_clear(&err);
    if (docker_backend_reload_auth(
            &r->d->backend, path,
            path != NULL && strcmp(path, CONFIG_DEFAULT_REGISTRY_AUTH_FILE) == 0, &err) < 0 ||
        swarm_backend_reload_auth(
            &r->d->backend, path,
            path != NULL && strcmp(path, CONFIG_DEFAULT_REGISTRY_AUTH_FILE) == 0, &err) < 0) {
        log_warn("registry_auth.reload",
                 "code=%s error=%s reason=\"keeping the credentials in use\"",
                 berth_code_name(err.code), log_quote(&lq, err.msg));
        if (path != NULL)
            reload_note(&r->failed, "registry-auth-file");
        return;
    }
    if (path != NULL)
        reload_took(r, "registry-auth-file");
}

void daemon_reload(struct berth_daemon *d, const struct berth_config *fresh)
{
    struct reload r;
    enum log_level old_level = d->live.log_level;

    memset(&r, 0, sizeof(r));
    r.d = d;
    r.fresh = fresh;
    buf_init(&r.applied, 4096);
    buf_init(&r.restart, 4096);
    buf_init(&r.failed, 4096);
    if (fresh != NULL)
        config_each_change(&d->live, fresh, reload_option, &r);
    if (r.log_format) {
        enum log_format lf = LOG_FORMAT_LOGFMT;
        enum log_target lt = LOG_TARGET_AUTO;

        /* Both were validated when the configuration loaded. */
        (void)log_format_parse(fresh->log_format, &lf);
        (void)log_target_parse(d->live.log_target, &lt);
        log_configure(lf, lt);
        reload_took(&r, "log-format");
    }
    if (r.vm_limits) {
        vm_service_set_limits(d->vm_svc, fresh->max_vms, fresh->max_vms_per_customer);
        if (d->live.max_vms != fresh->max_vms)
            reload_took(&r, "max-vms");
        if (d->live.max_vms_per_customer != fresh->max_vms_per_customer)
            reload_took(&r, "max-vms-per-customer");
    }
    if (r.replica_limit) {
        replica_service_set_limit(d->replica_svc, fresh->max_replicas_total);
        reload_took(&r, "max-replicas-total");
    }
    reload_tokens(&r);
    reload_tls(&r);
    reload_registry(&r);
    if (d->vault != NULL) {
        struct berth_err err;
        struct log_quoted lq;

        berth_err_clear(&err);
        if (vault_reload(d->vault, &err) < 0)
            log_warn("vault.reload", "code=%s error=%s reason=\"keeping the vault token in use\"",
                     berth_code_name(err.code), log_quote(&lq, err.msg));
        else
            log_info("vault.reload", "code=ok");
    }
    if (r.log_level) {
        /* The line below shows at the old level or the new one, whichever
         * says more: a reload to warn still reports itself. */
        log_set_level(fresh->log_level > old_level ? fresh->log_level : old_level);
        reload_took(&r, "log-level");
    }
    if (fresh != NULL) {
        if (r.restart.len > 0)
            log_warn("config.restart_needed",
                     "options=\"%s\" reason=\"changed in the configuration; in effect after a "
                     "restart\"",
                     r.restart.data);
        if (r.failed.len > 0)
            log_warn("config.reload_failed",
                     "options=\"%s\" reason=\"their files did not load; the ones in use stay\"",
                     r.failed.data);
        log_info("config.reload", "code=ok changed=\"%s\"",
                 r.applied.data != NULL ? r.applied.data : "");
    }
    if (r.log_level)
        log_set_level(fresh->log_level);
    buf_release(&r.applied);
    buf_release(&r.restart);
    buf_release(&r.failed);
}

/* ---- HTTP routes ------------------------------------------------------ */

/* Answer a request the front end found malformed, or one without a caller
 * where one is needed: 1 when resp is filled. */
static int refuse_caller(struct berth_daemon *d, const struct http_request *req, int need_caller,
                         const char *request_id, struct http_response *resp)
{
    const struct berth_err *why = http_request_malformed(req);
    struct log_quoted lq, lp;

    if (why != NULL) {
        connect_write_error(resp, why);
        log_info("http.malformed", "code=%s status=%d request_id=%s error=%s",
                 berth_code_name(why->code), resp->status, request_id, log_quote(&lq, why->msg));
        return 1;
    }
    if (!need_caller || http_request_caller(req, &why) != NULL)
        return 0;
    connect_write_error(resp, why);
    if (why->code == BERTH_UNAUTHENTICATED && d->cfg->auth_token_file[0] != '\0')
        http_response_header(resp, "WWW-Authenticate", "Bearer");
    log_info("auth.refused", "path=%s code=%s status=%d request_id=%s error=%s",
             log_quote(&lp, http_request_path(req)), berth_code_name(why->code), resp->status,
             request_id, log_quote(&lq, why->msg));
    return 1;
}

/* X-Request-Id on an answer the Connect layer did not make. */
static void set_request_id(struct http_response *resp, const char *request_id, struct arena *arena)
{
    const char *echo = arena_strdup(arena, request_id);

    if (echo != NULL)
        http_response_header(resp, "X-Request-Id", echo);
}

static void serve_readyz(struct berth_daemon *d, struct http_response *resp)
{
    struct berth_err err;
    int ok;

    berth_err_clear(&err);
    ok = d->backend.ops->ping(d->backend.ctx, berth_now_ms() + PING_TIMEOUT_MS, &err) == 0 &&
         vm_service_is_ready(d->vm_svc);
    resp->status = ok ? 200 : 503;
    http_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
    if (buf_appends(&resp->body, ok ? "ready\n" : "not ready\n", NULL) < 0)
        resp->status = 500;
}

/* Each connection is an fd, and so is each cgroup file the metrics keep
 * open between passes (DOCKER_BACKEND_STATS_FILES_PER_VM for each of
 * --max-vms): take the hard limit, and say so when even that is short of
 * --max-connections (accept then fails past it). Returns how many files
 * the metrics may keep open: what is left after the connections (past it,
 * they open their files for each read). */
static int64_t raise_fd_limit(const struct berth_config *cfg)
{
    struct rlimit rl;
    rlim_t conns = (rlim_t)cfg->max_connections + 256; /* the Engine, logs, files */
    rlim_t files = 0, want;

    if (strcmp(cfg->backend, "memory") != 0 && cfg->metrics_cgroup_root != NULL &&
        cfg->metrics_cgroup_root[0] != '\0')
        files = (rlim_t)cfg->max_vms * DOCKER_BACKEND_STATS_FILES_PER_VM;
    want = conns + files;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < conns)
        log_warn("server.fd_limit",
                 "limit=%llu max_connections=%lld reason=\"fewer open files "
                 "allowed than connections\"",
                 (unsigned long long)rl.rlim_cur, (long long)cfg->max_connections);
    if (rl.rlim_cur <= conns)
        return 0;
    return (int64_t)(rl.rlim_cur - conns < files ? rl.rlim_cur - conns : files);
}

/* Only what reads memory answers on an event thread: /healthz, and the
 * registry's reads once the registry is rebuilt (before that they wait for
 * it). /readyz and /metrics ask the Engine. */
static enum http_run classify_http(void *ctx, const struct http_request *req)
{
    struct berth_daemon *d = ctx;
    const char *path = http_request_path(req);

    if (strcmp(path, "/healthz") == 0)
        return HTTP_RUN_INLINE;
    if (strcmp(path, "/readyz") == 0 || strcmp(path, "/metrics") == 0 ||
        !vm_service_is_ready(d->vm_svc))
        return HTTP_RUN_WORKER;
    return connect_classify(&d->connect, req);
}

static void on_http(void *ctx, const struct http_request *req, struct http_response *resp,
                    struct arena *arena)
{
    struct berth_daemon *d = ctx;
    const char *path = http_request_path(req);
    int open_path = strcmp(path, "/healthz") == 0 || strcmp(path, "/readyz") == 0 ||
                    (strcmp(path, "/metrics") == 0 && !d->cfg->metrics_auth);

    char request_id[CONNECT_REQUEST_ID_MAX + 1];

    /* The Connect layer names its own answers; these are the rest. */
    connect_request_id(req, request_id);
    if (refuse_caller(d, req, !open_path, request_id, resp)) {
        set_request_id(resp, request_id, arena);
        return;
    }
    if (strcmp(path, "/healthz") == 0) {
        size_t counts[5];

        /* Take the registry lock once: a daemon stuck on it stops
         * answering here, and so stops feeding systemd's watchdog. */
        vm_registry_count_states(d->vms, counts);
        resp->status = 200;
        http_response_header(resp, "Content-Type", "text/plain; charset=utf-8");
        if (buf_appends(&resp->body, "ok\n", NULL) < 0)
            resp->status = 500;
        set_request_id(resp, request_id, arena);
        return;
    }
    if (strcmp(path, "/readyz") == 0) {
        serve_readyz(d, resp);
        set_request_id(resp, request_id, arena);
        return;
    }
    if (strcmp(path, "/metrics") == 0) {
        prometheus_serve(d->prom, req, resp);
        set_request_id(resp, request_id, arena);
        return;
    }
    connect_handle(&d->connect, req, resp, arena);
}

/* ---- Engine watcher --------------------------------------------------- */

/* How long the watcher rests between rounds: a backend without events is
 * polled each second; a down Engine is retried with backoff. */
static int64_t up_wait_ms(struct berth_daemon *d, int64_t backoff_ms)
{
    return d->backend.ops->watch != NULL ? backoff_ms : WATCH_INTERVAL_MS;
}

/* Wait up to ms or until stop; 1 when stopping. */
static int watcher_wait(struct berth_daemon *d, int64_t ms)
{
    int64_t until = berth_now_ms() + ms;
    int stopping;

    lock_take(&d->lock);
    while (!d->stopping && lock_wait_until(&d->wake, &d->lock, until) == 0)
        ;
    stopping = d->stopping;
    lock_give(&d->lock);
    return stopping;
}

/* Gateways and deployments from the Engine's listing into their cache. A
 * failure leaves the old cache; the event stream keeps it current. */
static void replica_sync(struct berth_daemon *d)
{
    struct berth_err err;

    berth_err_clear(&err);
    if (replica_service_sync(d->replica_svc, berth_now_ms() + 30000, &err) < 0 &&
        !atomic_load(&d->stop_flag)) {
        struct log_quoted lq;
        log_warn("krane.sync", "code=%s error=%s", berth_code_name(err.code),
                 log_quote(&lq, err.msg));
    }
}

static void on_engine_event(void *arg, const struct backend_event *ev)
{
    struct berth_daemon *d = arg;

    vm_service_on_event(d->vm_svc, ev);
    replica_service_on_event(d->replica_svc, ev);
    if (ev->time_unix_ns > d->events_since_ns)
        d->events_since_ns = ev->time_unix_ns;
}

/* Keep the registry in line with the Engine: once it answers, note the
 * time, sync from a listing, then follow its event stream from that time
 * (so nothing falls between the list and the subscription). When the stream
 * breaks, reconnect with backoff, resume from the last event's time and sync
 * again. Until the first sync, calls fail fast while the Engine is down. */
static void *watcher_main(void *arg)
{
    struct berth_daemon *d = arg;
    int synced = 0, was_up = -1;
    int64_t backoff_ms = WATCH_BACKOFF_MIN_MS;

    do {
        struct berth_err err;
        int up;

        berth_err_clear(&err);
        up = d->backend.ops->ping(d->backend.ctx, berth_now_ms() + PING_TIMEOUT_MS, &err) == 0;
        if (up) {
            if (d->events_since_ns == 0)
                d->events_since_ns = (berth_unix_ms() - 1000) * 1000000;
            if (!synced)
                vm_service_set_rebuilding(d->vm_svc);
            up = vm_service_rebuild(d->vm_svc, berth_now_ms() + 30000, &err) == 0;
            synced = synced || up;
            if (up)
                replica_sync(d);
        }
        /* A call cut short by the stop is no news about the Engine. */
        if (atomic_load(&d->stop_flag))
            break;
        if (up != was_up) {
            if (up)
                log_info("engine.up", "backend=%s", d->backend.ops->name);
            else {
                struct log_quoted lq;
                log_warn("engine.down", "backend=%s error=%s", d->backend.ops->name,
                         log_quote(&lq, err.msg));
            }
            was_up = up;
        }
        vm_service_set_ready(d->vm_svc, synced);
        if (up && d->backend.ops->watch != NULL) {
            int64_t began = berth_now_ms();

            berth_err_clear(&err);
            if (d->backend.ops->watch(d->backend.ctx, d->events_since_ns, &d->stop_flag,
                                      on_engine_event, d, &err) < 0) {
                struct log_quoted lq;

                if (atomic_load(&d->stop_flag))
                    break;
                log_warn("engine.events", "reason=%s", log_quote(&lq, err.msg));
                was_up = -1;
                /* A stream that breaks again soon after it opened backs off
                 * like an Engine that is down, instead of a re-list and a
                 * reconnect four times a second. */
                if (berth_now_ms() - began >= WATCH_STABLE_MS)
                    backoff_ms = WATCH_BACKOFF_MIN_MS;
                else if (backoff_ms < WATCH_BACKOFF_MAX_MS)
                    backoff_ms *= 2;
            }
            continue;
        }
        if (!up && backoff_ms < WATCH_BACKOFF_MAX_MS)
            backoff_ms *= 2;
    } while (!watcher_wait(d, up_wait_ms(d, backoff_ms)));
    return NULL;
}
