/* Engine JSON -> backend structs (see docker_internal.h): a container's
 * inspect answer and a /containers/json item, with their labels, network,
 * published ports, state and times; every field read through cJSON and
 * checked, so an odd answer gives an error, never garbage. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "berth/labels.h"
#include "berth/rfc3339.h"
#include "docker_internal.h"

static char *docker_json_dup(const cJSON *obj, const char *key);
static int docker_json_take_labels(const cJSON *labels, struct backend_container *out);
static int docker_json_take_network(const cJSON *settings, struct backend_container *out);
static int docker_json_take_port_map(const cJSON *map, struct backend_container *out, size_t *cap);
static int docker_json_add_port(struct backend_container *out, size_t *cap, int cport, int hport,
                                const char *proto);
static int docker_json_parse_port_key(const char *key, int *port, const char **proto);
static int docker_json_parse_int(const char *s, long max, long *out);
static int docker_json_parse_time(const char *s, int64_t *unix_ms);
static enum backend_health docker_json_inspect_health(const cJSON *state, const cJSON *config);
static enum backend_health docker_json_status_health(enum backend_state state, const char *status);

/* --- reading Engine JSON --------------------------------------------------------- */

int docker_json_is_managed(const cJSON *labels)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, LABEL_MANAGED);

    return cJSON_IsString(v) && strcmp(v->valuestring, LABEL_MANAGED_VALUE) == 0;
}

int docker_json_is_ours(const cJSON *labels, const char *instance)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(labels, LABEL_INSTANCE);

    if (!docker_json_is_managed(labels))
        return 0;
    return strcmp(docker_json_instance_of(cJSON_IsString(v) ? v->valuestring : NULL), instance) ==
           0;
}

const char *docker_json_instance_of(const char *value)
{
    return value == NULL || value[0] == '\0' ? "default" : value;
}

/* 1 when obj[key] is a non-empty array. */
static int docker_json_has_items(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0;
}

/* 1 when obj[key] is the string "host". */
static int docker_json_is_host(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return cJSON_IsString(v) && strcmp(v->valuestring, "host") == 0;
}

const char *docker_json_forged(const cJSON *root)
{
    const cJSON *host = cJSON_GetObjectItemCaseSensitive(root, "HostConfig");
    const cJSON *mounts = cJSON_GetObjectItemCaseSensitive(root, "Mounts"), *m;

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(host, "Privileged")))
        return "privileged";
    if (docker_json_is_host(host, "NetworkMode"))
        return "host network";
    if (docker_json_is_host(host, "PidMode"))
        return "host pid namespace";
    if (docker_json_is_host(host, "IpcMode"))
        return "host ipc namespace";
    if (docker_json_has_items(host, "Binds"))
        return "binds";
    if (docker_json_has_items(host, "CapAdd"))
        return "added capabilities";
    if (docker_json_has_items(host, "Devices"))
        return "devices";
    cJSON_ArrayForEach(m, mounts)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(m, "Type");

        if (!cJSON_IsString(type) || strcmp(type->valuestring, "volume") != 0)
            return "host-path mounts";
    }
    return NULL;
}

/* strdup of obj[key] when it is a string, else of "". NULL: out of memory. */
static char *docker_json_dup(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

/* The state a field of the Engine's JSON names: the Engine's words are the
 * names of enum backend_state. */
static enum backend_state docker_json_state(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

    return backend_state_parse(cJSON_IsString(v) ? v->valuestring : NULL);
}

/* An inspect's health: State.Health.Status once the container ran with a
 * check; before that, whether Config.Healthcheck (the image's merged with
 * the container's) has one to run. */
static enum backend_health docker_json_inspect_health(const cJSON *state, const cJSON *config)
{
    const cJSON *health = cJSON_GetObjectItemCaseSensitive(state, "Health");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(health, "Status");
    const cJSON *check = cJSON_GetObjectItemCaseSensitive(config, "Healthcheck");
    const cJSON *test = cJSON_GetObjectItemCaseSensitive(check, "Test");
    const cJSON *first = cJSON_GetArrayItem(test, 0);

    if (cJSON_IsString(status) && status->valuestring[0] != '\0') {
        enum backend_health h = backend_health_parse(status->valuestring);
        /* A word of a later Engine: there is a check, its verdict unknown. */
        return h != BACKEND_HEALTH_UNKNOWN ? h : BACKEND_HEALTH_STARTING;
    }
    if (!cJSON_IsString(first) || first->valuestring[0] == '\0' ||
        strcmp(first->valuestring, "NONE") == 0)
        return BACKEND_HEALTH_NONE;
    return BACKEND_HEALTH_STARTING;
}

/* A listing's health, from its Status text: a running container with a
 * check shows "Up 5 minutes (healthy)", "(unhealthy)" or "(health:
 * starting)", one without shows no such part. A paused one says "(Paused)"
 * whatever its health, any other state nothing: unknown then. */
static enum backend_health docker_json_status_health(enum backend_state state, const char *status)
{
    if (state != BACKEND_STATE_RUNNING || status == NULL || strncmp(status, "Up ", 3) != 0)
        return BACKEND_HEALTH_UNKNOWN;
    if (strstr(status, "(Paused)") != NULL)
        return BACKEND_HEALTH_UNKNOWN;
    if (strstr(status, "(health: starting)") != NULL)
        return BACKEND_HEALTH_STARTING;
    if (strstr(status, "(unhealthy)") != NULL)
        return BACKEND_HEALTH_UNHEALTHY;
    if (strstr(status, "(healthy)") != NULL)
        return BACKEND_HEALTH_HEALTHY;
    return BACKEND_HEALTH_NONE;
}

/* Fill *out from GET /containers/{id}/json; *out is only set on success. */
int docker_json_from_inspect(const cJSON *root, struct backend_container *out,
                             struct berth_err *err)
{
    struct backend_container c;
    const cJSON *state, *config, *settings, *host, *v;
    const char *name;
    size_t cap = 0;
    int64_t ms = 0;

    memset(&c, 0, sizeof(c));
    state = cJSON_GetObjectItemCaseSensitive(root, "State");
    config = cJSON_GetObjectItemCaseSensitive(root, "Config");
    settings = cJSON_GetObjectItemCaseSensitive(root, "NetworkSettings");
    host = cJSON_GetObjectItemCaseSensitive(root, "HostConfig");

    v = cJSON_GetObjectItemCaseSensitive(root, "Name");
    name = cJSON_IsString(v) ? v->valuestring : "";
    if (name[0] == '/')
        name++;
    c.id = docker_json_dup(root, "Id");
    c.name = strdup(name);
    c.image = docker_json_dup(config, "Image");
    c.state = docker_json_state(state, "Status");
    if (c.id == NULL || c.name == NULL || c.image == NULL)
        goto oom;
    c.oom_killed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "OOMKilled"));
    c.health = docker_json_inspect_health(state, config);
    v = cJSON_GetObjectItemCaseSensitive(root, "RestartCount");
    c.restart_count =
        cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e9 ? (int)v->valuedouble : 0;
    v = cJSON_GetObjectItemCaseSensitive(state, "ExitCode");
    c.exit_code = cJSON_IsNumber(v) ? v->valueint : 0;
    v = cJSON_GetObjectItemCaseSensitive(root, "Created");
    if (cJSON_IsString(v) && docker_json_parse_time(v->valuestring, &ms) == 0)
        c.created_unix = ms / 1000;
    v = cJSON_GetObjectItemCaseSensitive(state, "StartedAt");
    if (cJSON_IsString(v) && docker_json_parse_time(v->valuestring, &ms) == 0)
        c.started_unix_ms = ms;
    v = cJSON_GetObjectItemCaseSensitive(state, "FinishedAt");
    if (cJSON_IsString(v) && docker_json_parse_time(v->valuestring, &ms) == 0)
        c.finished_unix_ms = ms;
    if (docker_json_take_network(settings, &c) < 0)
        goto oom;
    /* Real host ports while running; the requested bindings otherwise. */
    if (docker_json_take_port_map(cJSON_GetObjectItemCaseSensitive(settings, "Ports"), &c, &cap) <
        0)
        goto oom;
    if (c.n_ports == 0 && docker_json_take_port_map(
                              cJSON_GetObjectItemCaseSensitive(host, "PortBindings"), &c, &cap) < 0)
        goto oom;
    if (docker_json_take_labels(cJSON_GetObjectItemCaseSensitive(config, "Labels"), &c) < 0)
        goto oom;
    *out = c;
    return 0;
oom:
    backend_container_release(&c);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}

/* Fill *out from one entry of GET /containers/json; set only on success. */
int docker_json_from_list_item(const cJSON *item, struct backend_container *out,
                               struct berth_err *err)
{
    struct backend_container c;
    const cJSON *names, *ports, *port, *v;
    const char *name = "";
    size_t cap = 0;

    memset(&c, 0, sizeof(c));
    names = cJSON_GetObjectItemCaseSensitive(item, "Names");
    v = cJSON_GetArrayItem(names, 0);
    if (cJSON_IsString(v))
        name = v->valuestring[0] == '/' ? v->valuestring + 1 : v->valuestring;
    c.id = docker_json_dup(item, "Id");
    c.name = strdup(name);
    c.image = docker_json_dup(item, "Image");
    c.state = docker_json_state(item, "State");
    if (c.id == NULL || c.name == NULL || c.image == NULL)
        goto oom;
    v = cJSON_GetObjectItemCaseSensitive(item, "Status");
    c.health = docker_json_status_health(c.state, cJSON_IsString(v) ? v->valuestring : NULL);
    c.restart_count = -1; /* a listing does not say */
    v = cJSON_GetObjectItemCaseSensitive(item, "Created");
    if (cJSON_IsNumber(v))
        c.created_unix = (int64_t)v->valuedouble;
    if (docker_json_take_network(cJSON_GetObjectItemCaseSensitive(item, "NetworkSettings"), &c) < 0)
        goto oom;
    ports = cJSON_GetObjectItemCaseSensitive(item, "Ports");
    cJSON_ArrayForEach(port, ports)
    {
        const cJSON *priv = cJSON_GetObjectItemCaseSensitive(port, "PrivatePort");
        const cJSON *pub = cJSON_GetObjectItemCaseSensitive(port, "PublicPort");
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(port, "Type");

        /* Exposed but not published: no host side to report. */
        if (!cJSON_IsNumber(priv) || !cJSON_IsNumber(pub) || !cJSON_IsString(type))
            continue;
        if (docker_json_add_port(&c, &cap, priv->valueint, pub->valueint, type->valuestring) < 0)
            goto oom;
    }
    if (docker_json_take_labels(cJSON_GetObjectItemCaseSensitive(item, "Labels"), &c) < 0)
        goto oom;
    *out = c;
    return 0;
oom:
    backend_container_release(&c);
    return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
}

/* All labels into out->labels. -1: out of memory (out keeps what it got,
 * for backend_container_release). */
static int docker_json_take_labels(const cJSON *labels, struct backend_container *out)
{
    const cJSON *l;
    size_t n = 0;

    cJSON_ArrayForEach(l, labels)
    {
        n++;
    }
    out->labels = calloc(n + 1, sizeof(*out->labels));
    if (out->labels == NULL)
        return -1;
    cJSON_ArrayForEach(l, labels)
    {
        struct backend_kv *kv = &out->labels[out->n_labels];

        if (l->string == NULL)
            continue;
        kv->key = strdup(l->string);
        kv->value = strdup(cJSON_IsString(l) ? l->valuestring : "");
        out->n_labels++;
        if (kv->key == NULL || kv->value == NULL)
            return -1;
    }
    return 0;
}

/* IP, MAC and gateway: the first network with an address (the default
 * bridge also fills the top-level fields, read last). */
static int docker_json_take_network(const cJSON *settings, struct backend_container *out)
{
    const cJSON *networks = cJSON_GetObjectItemCaseSensitive(settings, "Networks");
    const cJSON *net, *chosen = settings;

    cJSON_ArrayForEach(net, networks)
    {
        const cJSON *ip = cJSON_GetObjectItemCaseSensitive(net, "IPAddress");

        if (cJSON_IsString(ip) && ip->valuestring[0] != '\0') {
            chosen = net;
            break;
        }
    }
    out->ip_address = docker_json_dup(chosen, "IPAddress");
    out->mac_address = docker_json_dup(chosen, "MacAddress");
    out->gateway = docker_json_dup(chosen, "Gateway");
    if (out->ip_address == NULL || out->mac_address == NULL || out->gateway == NULL)
        return -1;
    return 0;
}

/* {"80/tcp": [{"HostIp": "...", "HostPort": "49153"}], "81/tcp": null} ->
 * ports (one per container port and host port; IPv4 and IPv6 bindings of
 * one port count once). -1: out of memory. */
static int docker_json_take_port_map(const cJSON *map, struct backend_container *out, size_t *cap)
{
    const cJSON *entry, *binding;

    cJSON_ArrayForEach(entry, map)
    {
        const char *proto;
        int cport;

        if (entry->string == NULL || docker_json_parse_port_key(entry->string, &cport, &proto) < 0)
            continue;
        cJSON_ArrayForEach(binding, entry)
        {
            const cJSON *hp = cJSON_GetObjectItemCaseSensitive(binding, "HostPort");
            long hport = 0;

            if (cJSON_IsString(hp) && hp->valuestring[0] != '\0' &&
                docker_json_parse_int(hp->valuestring, 65535, &hport) < 0)
                continue;
            if (docker_json_add_port(out, cap, cport, (int)hport, proto) < 0)
                return -1;
        }
    }
    return 0;
}

/* Append a port unless it is already there. -1: out of memory. */
static int docker_json_add_port(struct backend_container *out, size_t *cap, int cport, int hport,
                                const char *proto)
{
    struct backend_port *p;

    if (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0)
        return 0; /* sctp: not something berthd creates */
    for (size_t i = 0; i < out->n_ports; i++) {
        p = &out->ports[i];
        if (p->container_port == cport && p->host_port == hport && strcmp(p->protocol, proto) == 0)
            return 0;
    }
    if (out->n_ports == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;

        p = realloc(out->ports, ncap * sizeof(*p));
        if (p == NULL)
            return -1;
        out->ports = p;
        *cap = ncap;
    }
    p = &out->ports[out->n_ports++];
    memset(p, 0, sizeof(*p));
    p->container_port = cport;
    p->host_port = hport;
    memcpy(p->protocol, proto, strlen(proto) + 1); /* "tcp"/"udp" fit */
    return 0;
}

/* "80/tcp" -> 80, "tcp". */
static int docker_json_parse_port_key(const char *key, int *port, const char **proto)
{
    const char *slash = strchr(key, '/');
    char digits[8];
    size_t n;
    long v;

    if (slash == NULL)
        return -1;
    n = (size_t)(slash - key);
    if (n == 0 || n >= sizeof(digits))
        return -1;
    memcpy(digits, key, n);
    digits[n] = '\0';
    if (docker_json_parse_int(digits, 65535, &v) < 0 || v == 0)
        return -1;
    *port = (int)v;
    *proto = slash + 1;
    return 0;
}

/* Decimal digits only, 0..max. */
static int docker_json_parse_int(const char *s, long max, long *out)
{
    long v = 0;

    if (*s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
        if (v > max)
            return -1;
    }
    *out = v;
    return 0;
}

/* An Engine time (RFC 3339) as unix ms; Go's zero time (year 1) and
 * anything else before 1970 -> 0, "not set". */
static int docker_json_parse_time(const char *s, int64_t *unix_ms)
{
    int64_t ms;

    if (rfc3339_parse_ms(s, &ms) < 0)
        return -1;
    *unix_ms = ms > 0 ? ms : 0;
    return 0;
}
