// JS side of image.sh: make sure the test image exists before a Docker test
// creates VMs from it. Building is left to the shell script so the same
// recipe serves CI scripts and people.

import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import path from "node:path";

const run = promisify(execFile);

export const TEST_IMAGE = process.env.BERTH_TEST_IMAGE || "berth-test/busybox:latest";

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "image.sh");

/** Build TEST_IMAGE with image.sh unless `engine` already has it. */
export async function ensureTestImage(engine) {
  if (engine && (await engine.imageExists(TEST_IMAGE))) return TEST_IMAGE;
  const env = { ...process.env, BERTH_TEST_IMAGE: TEST_IMAGE };
  if (engine && !env.DOCKER_HOST) env.DOCKER_HOST = `unix://${engine.socketPath}`;
  try {
    await run("sh", [SCRIPT], { env, timeout: 120000 });
  } catch (err) {
    throw new Error(`building ${TEST_IMAGE} failed: ${err.message}\n${err.stderr || ""}`);
  }
  if (engine && !(await engine.imageExists(TEST_IMAGE))) {
    throw new Error(`image.sh finished but ${TEST_IMAGE} is still missing`);
  }
  return TEST_IMAGE;
}
