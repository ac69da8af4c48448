// A fake vault for the tests: vault.v1.VaultService served by
// @connectrpc/connect-node (a real Connect server, HTTP/1.1, plain or TLS
// with client certificates), with a toy cipher in place of real keys. A
// ciphertext is "toy1." + base64(plaintext XOR a key stream of the keyring)
// + "." + a tag of keyring and plaintext, so a wrong keyring is refused, as
// the vault refuses it. Every Decrypt is recorded (keyring, ciphertext,
// Authorization header) for the test to check; the vault can be told to
// require a bearer token, or to refuse every call.

import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ConnectError, Code } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { create, toJsonString } from "@bufbuild/protobuf";
import { protoRegistryOf } from "./proto.mjs";

const VAULT_PROTO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "vault_proto");

function registry() {
  return protoRegistryOf(VAULT_PROTO_DIR);
}

function keyStream(keyring, n) {
  const out = Buffer.alloc(n);
  let block = Buffer.alloc(0);
  for (let i = 0; i < n; i++) {
    if (i % 32 === 0) block = createHash("sha256").update(`${keyring}/${i / 32}`).digest();
    out[i] = block[i % 32];
  }
  return out;
}

function tag(keyring, plaintext) {
  return createHash("sha256").update(`${keyring}\0${plaintext}`).digest("hex").slice(0, 12);
}

export class FakeVault {
  /** token: the bearer token Decrypt requires (undefined: none); tls: { key, cert, ca } to serve https and ask for a client certificate signed by ca. */
  constructor({ token, tls } = {}) {
    this.token = token;
    this.tls = tls;
    this.calls = []; // { keyring, encrypted, authorization }
    this.refuse = undefined; // a Code every call answers with, when set
    this.server = undefined;
    this.url = undefined;
  }

  /** The toy ciphertext of plaintext under keyring. */
  encrypt(keyring, plaintext) {
    const data = Buffer.from(plaintext, "utf8");
    const ks = keyStream(keyring, data.length);
    const sealed = Buffer.from(data.map((b, i) => b ^ ks[i]));
    return `toy1.${sealed.toString("base64")}.${tag(keyring, plaintext)}`;
  }

  decrypt(keyring, encrypted) {
    const m = /^toy1\.([A-Za-z0-9+/=]*)\.([0-9a-f]{12})$/.exec(encrypted);
    if (!m) throw new ConnectError("not a ciphertext of this vault", Code.InvalidArgument);
    const sealed = Buffer.from(m[1], "base64");
    const ks = keyStream(keyring, sealed.length);
    const plaintext = Buffer.from(sealed.map((b, i) => b ^ ks[i])).toString("utf8");
    if (tag(keyring, plaintext) !== m[2]) throw new ConnectError(`no key of keyring ${keyring} opens this`, Code.NotFound);
    return plaintext;
  }

  /**
   * A deployment's encryptedSecretsBlob: the proto3 JSON of a
   * ctrl.v1.SecretsConfig whose values are encrypted, itself encrypted, as
   * bytes.
   */
  secretsBlob(keyring, secrets) {
    const schema = registry().getMessage("ctrl.v1.SecretsConfig");
    const sealed = Object.fromEntries(Object.entries(secrets).map(([k, v]) => [k, this.encrypt(keyring, v)]));
    const json = toJsonString(schema, create(schema, { secrets: sealed }));
    return Buffer.from(this.encrypt(keyring, json), "utf8");
  }

  /** Listen on 127.0.0.1:port (0: any; the port of a closed vault serves it again). */
  async start(port = 0) {
    const service = registry().getService("vault.v1.VaultService");
    const handler = connectNodeAdapter({
      routes: (router) =>
        router.service(service, {
          encrypt: (req) => ({ encrypted: this.encrypt(req.keyring, req.data), keyId: "toy" }),
          decrypt: (req, ctx) => {
            const authorization = ctx.requestHeader.get("authorization") || "";
            this.calls.push({ keyring: req.keyring, encrypted: req.encrypted, authorization });
            if (this.refuse !== undefined) throw new ConnectError("the vault refuses every call", this.refuse);
            if (this.token !== undefined && authorization !== `Bearer ${this.token}`) {
              throw new ConnectError("a bearer token of this vault is required", Code.Unauthenticated);
            }
            return { plaintext: this.decrypt(req.keyring, req.encrypted) };
          },
        }),
    });
    this.server = this.tls
      ? createHttpsServer({ ...this.tls, requestCert: true, rejectUnauthorized: true }, handler)
      : createServer(handler);
    await new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(port, "127.0.0.1", resolve);
    });
    this.url = `${this.tls ? "https" : "http"}://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  async close() {
    if (!this.server) return;
    this.server.closeAllConnections?.();
    await new Promise((resolve) => this.server.close(resolve));
    this.server = undefined;
  }
}

/** Start a fake vault (see FakeVault). */
export async function startFakeVault(opts) {
  return new FakeVault(opts).start();
}
