/* A client of a vault's Connect API (vault.v1.VaultService), for the
 * encrypted secrets of deployments: Decrypt as a unary JSON POST with
 * libcurl, a bearer token from a file (re-read by vault_reload), TLS
 * verified against a CA bundle, an optional client certificate. Safe to
 * use from any number of threads. Nothing it handles (token, plaintext) is
 * ever logged or put into an error message. */
#ifndef BERTH_VAULT_CLIENT_H
#define BERTH_VAULT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "berth/arena.h"
#include "berth/buf.h"
#include "berth/err.h"

/* Largest answer read from the vault. */
#define VAULT_BODY_MAX ((size_t)4 << 20)

struct vault_config {
    const char *url;         /* base URL, http:// or https:// (a trailing '/' is dropped) */
    const char *token_file;  /* "" or NULL: no Authorization header */
    const char *ca_file;     /* "" or NULL: the system's CA bundle */
    const char *client_cert; /* "" or NULL: no client certificate */
    const char *client_key;
    int64_t timeout_ms; /* one call at most; <= 0: 10 s */
};

struct vault; /* opaque */

/* A client for cfg (strings copied); reads the token file once. *out is the
 * caller's, freed with vault_free. -1 (invalid_argument naming the option)
 * when the token file cannot be read or holds no usable token. */
int vault_new(const struct vault_config *cfg, struct vault **out,
              struct berth_err *err) BERTH_MUST_USE;
/* vault_free(NULL) does nothing. */
void vault_free(struct vault *v);
/* Read the token file again (when there is one) and drop the idle
 * connections, so the next call reads the CA bundle and client certificate
 * again: 0 and the new token is used by the next call, or -1 and the token
 * in use is kept. */
int vault_reload(struct vault *v, struct berth_err *err) BERTH_MUST_USE;

/* POST <url>/vault.v1.VaultService/Decrypt {"keyring", "encrypted"}: the
 * answer's plaintext, NUL-terminated, in the arena (*plaintext set only on
 * success). `deadline` is monotonic ms; each call is also bounded by the
 * configured timeout. -1 with: unavailable (the vault cannot be reached,
 * does not answer in time, or says it is unavailable), deadline_exceeded
 * (the deadline passed), failed_precondition (the vault refused, with its
 * code and message, or answered something that is not a DecryptResponse),
 * resource_exhausted (out of memory). The message never holds the request
 * or the answer's plaintext. */
int vault_decrypt(struct vault *v, const char *keyring, const char *encrypted, int64_t deadline,
                  struct arena *a, char **plaintext, struct berth_err *err) BERTH_MUST_USE;

/* How vault_decrypt reads an HTTP answer (exposed for the unit tests): the
 * status and body of one Decrypt call -> 0 and the plaintext, or -1 with the
 * error vault_decrypt answers. */
int vault_read_answer(long status, const struct buf *body, struct arena *a, char **plaintext,
                      struct berth_err *err) BERTH_MUST_USE;

#endif
