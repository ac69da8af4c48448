// Wait for a condition with a deadline. Tests wait on what they need to see
// (a log line, a container state, a port answering), never on a fixed sleep.

import { setTimeout as delay } from "node:timers/promises";

/**
 * Poll `check` (sync or async) until it returns a truthy value, and resolve
 * with that value. A throw from `check` aborts at once. Past `timeoutMs` it
 * rejects with an error naming `what`, plus `describe()` when given.
 */
export async function waitFor(check, { timeoutMs = 10000, intervalMs = 50, what = "condition", describe } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() >= deadline) {
      let msg = `timed out after ${timeoutMs} ms waiting for ${what}`;
      if (describe) {
        try {
          msg += `\n${await describe()}`;
        } catch {
          // the description is best effort
        }
      }
      throw new Error(msg);
    }
    // Pause between polls of the condition (bounded by the deadline above).
    await delay(Math.min(intervalMs, Math.max(1, deadline - Date.now())));
  }
}
