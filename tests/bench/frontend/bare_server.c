/* The baseline of the frontend benchmark: a bare libmicrohttpd server (epoll,
 * a pool of two threads, keep-alive) that answers every POST with a small
 * cJSON-built body shaped like berthd's GetVmInfo (or ListVms, for a path
 * ending in /ListVms) answer. What berthd adds to a request is what it costs
 * on top of this. Prints "listening 127.0.0.1:PORT" once bound; stops on
 * SIGTERM or SIGINT.
 *
 *   bare_server [--port N] [--threads N] [--max-connections N] [--connection-memory BYTES]
 *
 * --connection-memory sets MHD_OPTION_CONNECTION_MEMORY_LIMIT (libmicrohttpd's
 * default, 32 KiB, when not given): what an idle connection costs hangs on it. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int parse_uint(const char *s, long lo, long hi, long *out);
static int listen_on(unsigned port, unsigned *bound);
static char *body_vm_info(void);
static char *body_list_vms(void);
static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls);

/* A marker for "headers seen, body being read" between on_access calls. */
static int request_started;

static int parse_uint(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Bind 127.0.0.1:port with the backlog berthd uses (128), so both servers
 * meet a burst of connects the same way. */
static int listen_on(unsigned port, unsigned *bound)
{
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    int fd, one = 1;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(fd, 128) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &sl) < 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(sin.sin_port);
    return fd;
}

/* The fields berthd's GetVmInfo gives for a running VM of the memory
 * backend, built as a tree and printed on every request, as berthd does.
 * Returns a malloc'd string (cJSON's allocator), or NULL. */
static char *body_vm_info(void)
{
    cJSON *root = cJSON_CreateObject(), *config, *cpu, *mem, *ctr, *cmd, *bi;
    char *out = NULL;

    if (root == NULL)
        return NULL;
    cJSON_AddStringToObject(root, "vmId", "bench-vm");
    config = cJSON_AddObjectToObject(root, "config");
    cpu = cJSON_AddObjectToObject(config, "cpu");
    cJSON_AddNumberToObject(cpu, "vcpuCount", 1);
    mem = cJSON_AddObjectToObject(config, "memory");
    cJSON_AddStringToObject(mem, "sizeBytes", "134217728");
    ctr = cJSON_AddObjectToObject(config, "container");
    cJSON_AddStringToObject(ctr, "image", "busybox:latest");
    cmd = cJSON_AddArrayToObject(ctr, "command");
    cJSON_AddItemToArray(cmd, cJSON_CreateString("sleep"));
    cJSON_AddItemToArray(cmd, cJSON_CreateString("3600"));
    cJSON_AddStringToObject(root, "state", "VM_STATE_RUNNING");
    bi = cJSON_AddObjectToObject(root, "backendInfo");
    cJSON_AddStringToObject(bi, "backend", "memory");
    cJSON_AddStringToObject(bi, "container_id",
                            "0000000000000000000000000000000000000000000000000000000000000001");
    cJSON_AddStringToObject(bi, "container_name", "berth-vm-bench-vm");
    cJSON_AddStringToObject(bi, "image", "busybox:latest");
    cJSON_AddStringToObject(bi, "customer_id", "");
    cJSON_AddObjectToObject(root, "networkInfo");
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* ListVms with the one VM the benchmark creates. Same ownership as above. */
static char *body_list_vms(void)
{
    cJSON *root = cJSON_CreateObject(), *vms, *vm;
    char *out = NULL;

    if (root == NULL)
        return NULL;
    vms = cJSON_AddArrayToObject(root, "vms");
    vm = cJSON_CreateObject();
    cJSON_AddItemToArray(vms, vm);
    cJSON_AddStringToObject(vm, "vmId", "bench-vm");
    cJSON_AddStringToObject(vm, "state", "VM_STATE_RUNNING");
    cJSON_AddNumberToObject(vm, "vcpuCount", 1);
    cJSON_AddStringToObject(vm, "memorySizeBytes", "134217728");
    cJSON_AddStringToObject(vm, "createdTimestamp", "1796347172");
    cJSON_AddStringToObject(vm, "modifiedTimestamp", "1796347172");
    cJSON_AddNumberToObject(root, "totalCount", 1);
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    size_t n = strlen(url);
    char *body;

    (void)cls;
    (void)version;
    (void)upload_data;
    if (*req_cls == NULL) {
        *req_cls = &request_started;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* the body is read and dropped */
        return MHD_YES;
    }
    if (strcmp(method, "POST") != 0) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        ret = MHD_queue_response(conn, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
        MHD_destroy_response(resp);
        return ret;
    }
    if (n >= 8 && strcmp(url + n - 8, "/ListVms") == 0)
        body = body_list_vms();
    else
        body = body_vm_info();
    if (body == NULL)
        return MHD_NO;
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"port", required_argument, NULL, 'p'},
                                             {"threads", required_argument, NULL, 't'},
                                             {"max-connections", required_argument, NULL, 'm'},
                                             {"connection-memory", required_argument, NULL, 'M'},
                                             {NULL, 0, NULL, 0}};
    long port = 0, threads = 2, max_conns = 20000, conn_memory = 0;
    struct MHD_Daemon *d;
    unsigned bound = 0;
    sigset_t set;
    int fd, c, sig;

    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        int bad = 0;

        if (c == 'p')
            bad = parse_uint(optarg, 0, 65535, &port);
        else if (c == 't')
            bad = parse_uint(optarg, 1, 64, &threads);
        else if (c == 'm')
            bad = parse_uint(optarg, 1, 1000000, &max_conns);
        else if (c == 'M')
            bad = parse_uint(optarg, 1024, 1 << 24, &conn_memory);
        else
            bad = -1;
        if (bad < 0) {
            fprintf(stderr, "usage: bare_server [--port N] [--threads N] [--max-connections N] "
                            "[--connection-memory BYTES]\n");
            return 2;
        }
    }
    /* The signals are waited for below, so no thread may take them first. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    fd = listen_on((unsigned)port, &bound);
    if (fd < 0) {
        fprintf(stderr, "bare_server: cannot listen on port %ld: %s\n", port, strerror(errno));
        return 1;
    }
    d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                         on_access, NULL, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned)threads, MHD_OPTION_CONNECTION_LIMIT, (unsigned)max_conns,
                         MHD_OPTION_CONNECTION_TIMEOUT, 60u,
                         /* 0 would be taken as a size; the option is left out instead. */
                         conn_memory > 0 ? MHD_OPTION_CONNECTION_MEMORY_LIMIT : MHD_OPTION_END,
                         (size_t)conn_memory, MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "bare_server: libmicrohttpd did not start\n");
        close(fd);
        return 1;
    }
    printf("listening 127.0.0.1:%u\n", bound);
    fflush(stdout);
    while (sigwait(&set, &sig) != 0)
        ;
    MHD_stop_daemon(d);
    close(fd);
    return 0;
}
