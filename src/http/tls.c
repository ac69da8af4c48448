/* TLS credentials for the HTTP listener (src/http/tls.h): PEM files read
 * into GnuTLS structures, one generation per load, the client CA as a trust
 * list that peer chains are verified against. */
#include "tls.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509.h>

#include "berth/buf.h"
#include "berth/lock.h"

#define PEM_MAX ((size_t)1 << 20)
#define MAX_CHAIN 16

struct tls_gen {
    gnutls_pcert_st pcert[MAX_CHAIN];
    unsigned n;
    gnutls_privkey_t key;
    gnutls_x509_trust_list_t trust; /* NULL without a client CA */
    struct tls_gen *older;
};

struct tls_state {
    char *cert_path, *key_path; /* the reloading thread's only */
    char *ca_path;              /* immutable; NULL: none */
    char *trust_pem;            /* immutable: the CA as first loaded */
    pthread_mutex_t lock;
    struct tls_gen *current; /* guarded by lock; older ones hang off it */
};

static int read_pem(const char *what, const char *path, struct buf *out, struct berth_err *err);
static int gen_load(const struct tls_state *t, const char *cert_path, const char *key_path,
                    struct tls_gen **out, char **ca_pem, struct berth_err *err);
static void gen_free(struct tls_gen *g);
static char *peer_spiffe(gnutls_x509_crt_t crt);

static int read_pem(const char *what, const char *path, struct buf *out, struct berth_err *err)
{
    FILE *f = fopen(path, "re");
    char chunk[4096];
    size_t n;
    int rc = 0;

    if (f == NULL)
        return berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s '%.200s': %s", what, path,
                             strerror(errno));
    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (buf_append(out, chunk, n, NULL) < 0)
            rc = berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s '%.200s': too large", what, path);
    fclose(f);
    if (rc == 0 && buf_append(out, "", 1, NULL) < 0)
        rc = berth_err_set(err, BERTH_INVALID_ARGUMENT, "%s '%.200s': too large", what, path);
    return rc;
}

static void gen_free(struct tls_gen *g)
{
    while (g != NULL) {
        struct tls_gen *older = g->older;

        for (unsigned i = 0; i < g->n; i++)
            gnutls_pcert_deinit(&g->pcert[i]);
        if (g->key != NULL)
            gnutls_privkey_deinit(g->key);
        if (g->trust != NULL)
            gnutls_x509_trust_list_deinit(g->trust, 1);
        free(g);
        g = older;
    }
}

/* One generation from the files; *ca_pem (when not NULL) takes the CA's
 * text. The pair is checked to match, as GnuTLS does when it loads one. */
static int gen_load(const struct tls_state *t, const char *cert_path, const char *key_path,
                    struct tls_gen **out, char **ca_pem, struct berth_err *err)
{
    struct buf cert, key, ca;
    struct tls_gen *g = calloc(1, sizeof(*g));
    gnutls_certificate_credentials_t check = NULL;
    gnutls_datum_t dc, dk, dca;
    int rc = -1, r;

    buf_init(&cert, PEM_MAX);
    buf_init(&key, PEM_MAX);
    buf_init(&ca, PEM_MAX);
    if (g == NULL) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    if (read_pem("tls-cert", cert_path, &cert, err) < 0 ||
        read_pem("tls-key", key_path, &key, err) < 0 ||
        (t->ca_path != NULL && read_pem("tls-client-ca", t->ca_path, &ca, err) < 0))
        goto out;
    dc.data = (unsigned char *)cert.data;
    dc.size = (unsigned)cert.len - 1;
    dk.data = (unsigned char *)key.data;
    dk.size = (unsigned)key.len - 1;
    if (gnutls_certificate_allocate_credentials(&check) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    r = gnutls_certificate_set_x509_key_mem(check, &dc, &dk, GNUTLS_X509_FMT_PEM);
    if (r < 0) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "tls-cert '%.200s' and tls-key '%.200s': %s",
                      cert_path, key_path, gnutls_strerror(r));
        goto out;
    }
    g->n = MAX_CHAIN;
    r = gnutls_pcert_list_import_x509_raw(g->pcert, &g->n, &dc, GNUTLS_X509_FMT_PEM, 0);
    if (r < 0) {
        g->n = 0;
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "tls-cert '%.200s': %s", cert_path,
                      gnutls_strerror(r));
        goto out;
    }
    if (gnutls_privkey_init(&g->key) < 0) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto out;
    }
    r = gnutls_privkey_import_x509_raw(g->key, &dk, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (r < 0) {
        berth_err_set(err, BERTH_INVALID_ARGUMENT, "tls-key '%.200s': %s", key_path,
                      gnutls_strerror(r));
        goto out;
    }
    if (t->ca_path != NULL) {
        dca.data = (unsigned char *)ca.data;
        dca.size = (unsigned)ca.len - 1;
        if (gnutls_x509_trust_list_init(&g->trust, 0) < 0) {
            berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
            goto out;
        }
        r = gnutls_x509_trust_list_add_trust_mem(g->trust, &dca, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        if (r <= 0) {
            berth_err_set(err, BERTH_INVALID_ARGUMENT, "tls-client-ca '%.200s': %s", t->ca_path,
                          r < 0 ? gnutls_strerror(r) : "no certificate");
            goto out;
        }
        if (ca_pem != NULL) {
            *ca_pem = buf_detach(&ca);
            if (*ca_pem == NULL) {
                berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
                goto out;
            }
        }
    }
    *out = g;
    g = NULL;
    rc = 0;
out:
    if (check != NULL)
        gnutls_certificate_free_credentials(check);
    if (key.data != NULL)
        explicit_bzero(key.data, key.len);
    buf_release(&cert);
    buf_release(&key);
    buf_release(&ca);
    gen_free(g);
    return rc;
}

int tls_state_new(const char *cert, const char *key, const char *client_ca, struct tls_state **out,
                  struct berth_err *err)
{
    struct tls_state *t = calloc(1, sizeof(*t));

    if (t == NULL)
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    lock_init(&t->lock);
    t->cert_path = strdup(cert);
    t->key_path = strdup(key != NULL ? key : "");
    if (client_ca != NULL && client_ca[0] != '\0')
        t->ca_path = strdup(client_ca);
    if (t->cert_path == NULL || t->key_path == NULL ||
        (client_ca != NULL && client_ca[0] != '\0' && t->ca_path == NULL)) {
        berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
        goto fail;
    }
    if (gen_load(t, t->cert_path, t->key_path, &t->current, &t->trust_pem, err) < 0)
        goto fail;
    *out = t;
    return 0;
fail:
    tls_state_free(t);
    return -1;
}

int tls_state_reload(struct tls_state *t, struct berth_err *err)
{
    return tls_state_reload_files(t, NULL, NULL, err);
}

int tls_state_reload_files(struct tls_state *t, const char *cert, const char *key,
                           struct berth_err *err)
{
    struct tls_gen *g = NULL;
    char *c = strdup(cert != NULL ? cert : t->cert_path);
    char *k = strdup(key != NULL ? key : t->key_path);

    if (c == NULL || k == NULL) {
        free(c);
        free(k);
        return berth_err_set(err, BERTH_RESOURCE_EXHAUSTED, "out of memory");
    }
    if (gen_load(t, c, k, &g, NULL, err) < 0) {
        free(c);
        free(k);
        return -1;
    }
    lock_take(&t->lock);
    g->older = t->current;
    t->current = g;
    lock_give(&t->lock);
    free(t->cert_path);
    free(t->key_path);
    t->cert_path = c;
    t->key_path = k;
    return 0;
}

const char *tls_state_trust_pem(const struct tls_state *t)
{
    return t->trust_pem;
}

void tls_state_current(struct tls_state *t, gnutls_pcert_st **pcert, unsigned *n,
                       gnutls_privkey_t *key)
{
    lock_take(&t->lock);
    *pcert = t->current->pcert;
    *n = t->current->n;
    *key = t->current->key;
    lock_give(&t->lock);
}

/* The first URI SAN that begins with spiffe://, or NULL. */
static char *peer_spiffe(gnutls_x509_crt_t crt)
{
    for (unsigned i = 0;; i++) {
        size_t size = 0;
        unsigned critical = 0;
        char *uri;
        int r = gnutls_x509_crt_get_subject_alt_name(crt, i, NULL, &size, &critical);

        if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
            return NULL;
        if (r != GNUTLS_E_SHORT_MEMORY_BUFFER)
            continue;
        uri = malloc(size + 1);
        if (uri == NULL)
            return NULL;
        r = gnutls_x509_crt_get_subject_alt_name(crt, i, uri, &size, &critical);
        if (r == GNUTLS_SAN_URI && size >= 9 && strncmp(uri, "spiffe://", 9) == 0 &&
            memchr(uri, '\0', size) == NULL) {
            uri[size] = '\0';
            return uri;
        }
        free(uri);
        if (i > 64)
            return NULL;
    }
}

void tls_peer_read(struct tls_state *t, gnutls_session_t session, struct tls_peer *out)
{
    const gnutls_datum_t *raw;
    gnutls_x509_crt_t crts[MAX_CHAIN];
    unsigned n = 0, got = 0, status = 1;
    gnutls_datum_t dn = {NULL, 0};

    memset(out, 0, sizeof(*out));
    raw = gnutls_certificate_get_peers(session, &n);
    if (raw == NULL || n == 0 || gnutls_certificate_type_get(session) != GNUTLS_CRT_X509)
        return;
    if (n > MAX_CHAIN)
        n = MAX_CHAIN;
    for (; got < n; got++) {
        if (gnutls_x509_crt_init(&crts[got]) < 0)
            break;
        if (gnutls_x509_crt_import(crts[got], &raw[got], GNUTLS_X509_FMT_DER) < 0) {
            gnutls_x509_crt_deinit(crts[got]);
            break;
        }
    }
    if (got == 0)
        return;
    lock_take(&t->lock);
    if (t->current->trust != NULL &&
        gnutls_x509_trust_list_verify_crt(t->current->trust, crts, got, 0, &status, NULL) == 0 &&
        status == 0)
        out->verified = 1;
    lock_give(&t->lock);
    if (gnutls_x509_crt_get_dn3(crts[0], &dn, 0) == 0 && dn.data != NULL) {
        out->subject = strndup((const char *)dn.data, dn.size);
        gnutls_free(dn.data);
    }
    out->spiffe = peer_spiffe(crts[0]);
    for (unsigned i = 0; i < got; i++)
        gnutls_x509_crt_deinit(crts[i]);
}

void tls_peer_release(struct tls_peer *p)
{
    free(p->subject);
    free(p->spiffe);
    memset(p, 0, sizeof(*p));
}

void tls_state_free(struct tls_state *t)
{
    if (t == NULL)
        return;
    gen_free(t->current);
    free(t->trust_pem);
    free(t->cert_path);
    free(t->key_path);
    free(t->ca_path);
    lock_destroy(&t->lock);
    free(t);
}
