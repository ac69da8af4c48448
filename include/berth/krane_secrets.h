/* A deployment's encrypted_secrets_blob, read as krane's Docker backend
 * reads it: the blob is decrypted with the deployment's environment id as
 * the keyring; the plaintext is the proto3 JSON of ctrl.v1.SecretsConfig,
 * {"secrets": {"NAME": "<encrypted value>", ...}}; each value is decrypted
 * the same way and becomes the environment variable NAME. How one value is
 * decrypted (the vault's Decrypt) is the caller's: a function pointer, so
 * the tests can stand in for the vault. */
#ifndef BERTH_KRANE_SECRETS_H
#define BERTH_KRANE_SECRETS_H

#include <stddef.h>
#include <stdint.h>

#include "berth/arena.h"
#include "berth/err.h"
#include "berth/krane_objects.h"

/* Most secrets one blob may hold. */
#define KRANE_SECRETS_MAX 1000

/* Decrypt `encrypted` with `keyring`: 0 and the plaintext (NUL-terminated,
 * in the arena), or -1 with err (unavailable: the decrypter cannot be
 * reached; failed_precondition: it refused). */
typedef int (*krane_decrypt_fn)(void *ctx, const char *keyring, const char *encrypted,
                                int64_t deadline, struct arena *a, char **plaintext,
                                struct berth_err *err);

struct krane_decryptor {
    krane_decrypt_fn decrypt; /* NULL: no decrypter (the blob is passed through) */
    void *ctx;
};

/* The secrets of the `len` bytes of blob (which must be UTF-8 text without
 * NUL: the vault's ciphertexts are strings), decrypted with `keyring`:
 * *out (n entries, sorted by name, names and values in the arena). `field`
 * names the blob in messages ("deployment.encryptedSecretsBlob"). Errors:
 * the decrypter's, invalid_argument (the blob is not text),
 * failed_precondition (the plaintext is not a SecretsConfig, a name is not
 * an environment name, too many secrets). No message holds a plaintext or
 * a value; names of secrets may appear. */
int krane_secrets_decrypt(const struct krane_decryptor *d, const char *field, const uint8_t *blob,
                          size_t len, const char *keyring, int64_t deadline, struct arena *a,
                          struct krane_env **out, size_t *n, struct berth_err *err) BERTH_MUST_USE;

#endif
