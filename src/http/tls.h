/* The TLS listener's credentials through GnuTLS (private to src/http): the
 * certificate and key in generations a SIGHUP replaces, and the client CA
 * that peer certificates are verified against. */
#ifndef BERTH_HTTP_TLS_H
#define BERTH_HTTP_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>

#include "berth/err.h"

/* What a client's certificate says, read once per connection. */
struct tls_peer {
    int verified;  /* chains to the client CA, in its validity period */
    char *subject; /* RFC 4514 DN, or NULL; owned */
    char *spiffe;  /* the first spiffe:// URI SAN, or NULL; owned */
};

struct tls_state;

/* Load cert, key and (when not empty) the client CA. */
int tls_state_new(const char *cert, const char *key, const char *client_ca, struct tls_state **out,
                  struct berth_err *err) BERTH_MUST_USE;
/* Load the files again; on failure the generation in use stays. */
int tls_state_reload(struct tls_state *t, struct berth_err *err) BERTH_MUST_USE;
/* The same from other files (NULL: the one in use), which later reloads
 * read once they load. One reloading thread at a time. */
int tls_state_reload_files(struct tls_state *t, const char *cert, const char *key,
                           struct berth_err *err) BERTH_MUST_USE;
/* The client CA's PEM as first loaded (for libmicrohttpd, which then asks
 * clients for a certificate), or NULL without one. Lives as long as t. */
const char *tls_state_trust_pem(const struct tls_state *t);
/* The generation in use. Every generation lives until tls_state_free, as
 * GnuTLS keeps using it for the sessions that took it. */
void tls_state_current(struct tls_state *t, gnutls_pcert_st **pcert, unsigned *n,
                       gnutls_privkey_t *key);
/* Verify and read the peer's certificate of a session. */
void tls_peer_read(struct tls_state *t, gnutls_session_t session, struct tls_peer *out);
void tls_peer_release(struct tls_peer *p);
/* NULL does nothing. */
void tls_state_free(struct tls_state *t);

#endif
