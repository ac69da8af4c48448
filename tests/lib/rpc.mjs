// One Connect unary call as JSON over POST: the one helper every
// integration and interop test uses to call a procedure of the daemon.

/** The client's wait for an answer unless a test says otherwise. */
export const RPC_TIMEOUT_MS = 30000;

/**
 * POST `body` to `procedure` ("/pkg.Service/Method") of daemon `d` (a Berthd,
 * or anything with its request()) as application/json. `body` may be an
 * object (serialized here) or a string or bytes (sent as they are).
 * opts.headers are added (and may replace Content-Type); opts.timeoutMs
 * bounds the wait. Resolves to rawRequest's answer: { status, headers,
 * body, decoded, text, json } with json the parsed body, or undefined.
 */
export function rpc(d, procedure, body, { headers = {}, timeoutMs = RPC_TIMEOUT_MS } = {}) {
  const raw = typeof body === "string" || Buffer.isBuffer(body) || body instanceof Uint8Array;
  return d.request({
    method: "POST",
    path: procedure,
    headers: { "Content-Type": "application/json", ...headers },
    body: raw ? body : JSON.stringify(body),
    timeoutMs,
  });
}

/**
 * rpc() bound to one service: returns (method, body, opts) calling
 * `/${service}/${method}` on the daemon `daemon()` returns at the time of
 * the call (tests restart theirs), with `defaults` under each call's opts.
 */
export function serviceRpc(daemon, service, defaults = {}) {
  const base = service.startsWith("/") ? service : `/${service}`;
  return (method, body, opts = {}) =>
    rpc(daemon(), `${base}/${method}`, body, {
      ...defaults,
      ...opts,
      headers: { ...defaults.headers, ...opts.headers },
    });
}
