/* Helpers shared by every backend implementation (see berth/backend.h). */
#include "berth/backend.h"

#include <stdlib.h>
#include <string.h>

static const char *const backend_state_names[BACKEND_STATE_COUNT] = {
    [BACKEND_STATE_UNKNOWN] = "unknown",       [BACKEND_STATE_CREATED] = "created",
    [BACKEND_STATE_RUNNING] = "running",       [BACKEND_STATE_PAUSED] = "paused",
    [BACKEND_STATE_RESTARTING] = "restarting", [BACKEND_STATE_REMOVING] = "removing",
    [BACKEND_STATE_EXITED] = "exited",         [BACKEND_STATE_DEAD] = "dead",
};

const char *backend_state_name(enum backend_state st)
{
    return (unsigned)st < BACKEND_STATE_COUNT ? backend_state_names[st] : "unknown";
}

enum backend_state backend_state_parse(const char *name)
{
    if (name == NULL)
        return BACKEND_STATE_UNKNOWN;
    for (int i = BACKEND_STATE_UNKNOWN + 1; i < BACKEND_STATE_COUNT; i++)
        if (strcmp(backend_state_names[i], name) == 0)
            return (enum backend_state)i;
    return BACKEND_STATE_UNKNOWN;
}

static const char *const backend_health_names[BACKEND_HEALTH_COUNT] = {
    [BACKEND_HEALTH_UNKNOWN] = "unknown",     [BACKEND_HEALTH_NONE] = "none",
    [BACKEND_HEALTH_STARTING] = "starting",   [BACKEND_HEALTH_HEALTHY] = "healthy",
    [BACKEND_HEALTH_UNHEALTHY] = "unhealthy",
};

const char *backend_health_name(enum backend_health h)
{
    return (unsigned)h < BACKEND_HEALTH_COUNT ? backend_health_names[h] : "unknown";
}

enum backend_health backend_health_parse(const char *name)
{
    if (name == NULL)
        return BACKEND_HEALTH_UNKNOWN;
    for (int i = BACKEND_HEALTH_UNKNOWN + 1; i < BACKEND_HEALTH_COUNT; i++)
        if (strcmp(backend_health_names[i], name) == 0)
            return (enum backend_health)i;
    return BACKEND_HEALTH_UNKNOWN;
}

void backend_container_release(struct backend_container *c)
{
    if (c == NULL)
        return;
    free(c->id);
    free(c->name);
    free(c->image);
    free(c->ip_address);
    free(c->mac_address);
    free(c->gateway);
    free(c->ports);
    for (size_t i = 0; i < c->n_labels; i++) {
        free(c->labels[i].key);
        free(c->labels[i].value);
    }
    free(c->labels);
    memset(c, 0, sizeof(*c));
}

void backend_container_list_release(struct backend_container_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        backend_container_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

const char *backend_container_label(const struct backend_container *c, const char *key)
{
    for (size_t i = 0; i < c->n_labels; i++)
        if (strcmp(c->labels[i].key, key) == 0)
            return c->labels[i].value;
    return NULL;
}

void backend_destroy(struct backend *b)
{
    if (b == NULL || b->ops == NULL)
        return;
    if (b->ops->destroy)
        b->ops->destroy(b->ctx);
    b->ops = NULL;
    b->ctx = NULL;
}

void backend_cancel_all(struct backend *b)
{
    if (b != NULL && b->ops != NULL && b->ops->cancel_all != NULL)
        b->ops->cancel_all(b->ctx);
}

void backend_replica_set_release(struct backend_replica_set *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->items[i].handle);
        free(s->items[i].host);
        free(s->items[i].ports);
        free(s->items[i].image);
    }
    free(s->items);
    free(s->ns);
    free(s->id);
    memset(s, 0, sizeof(*s));
}

void backend_replica_set_list_release(struct backend_replica_set_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        backend_replica_set_release(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->n = 0;
}

int backend_has_stats(const struct backend *b)
{
    return b != NULL && b->ops != NULL && b->ops->stats_sweep != NULL;
}

int backend_cpu_valid(const struct backend_cpu *c)
{
    return c != NULL && c->total_ns > 0 && c->system_ns > 0;
}

/* delta(container cpu) / delta(host cpu, all cpus) * cpus * 100. */
double backend_cpu_percent(const struct backend_cpu *cur, const struct backend_cpu *base)
{
    double pct;

    if (!backend_cpu_valid(cur) || !backend_cpu_valid(base) || cur->online_cpus == 0)
        return 0.0;
    if (cur->total_ns < base->total_ns || cur->system_ns <= base->system_ns)
        return 0.0;
    pct = (double)(cur->total_ns - base->total_ns) / (double)(cur->system_ns - base->system_ns) *
          (double)cur->online_cpus * 100.0;
    if (pct > (double)cur->online_cpus * 100.0)
        pct = (double)cur->online_cpus * 100.0;
    return pct;
}

const char *backend_outcome_name(enum backend_outcome o)
{
    static const char *const names[BACKEND_OUTCOME_COUNT] = {"ok", "client_error", "server_error",
                                                             "transport_error"};

    return (unsigned)o < BACKEND_OUTCOME_COUNT ? names[o] : "unknown";
}
