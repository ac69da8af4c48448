// Service and message descriptors for @bufbuild/protobuf v2 and connect-node,
// made from proto/ at test time so that no generated code is committed.
//
// How: the buf binary from the npm package compiles proto/ into a
// FileDescriptorSet (`buf build <proto> --as-file-descriptor-set -o
// <tmp>/image.binpb`); we parse it with FileDescriptorSetSchema and wrap it in
// a registry, from which getService()/getMessage() give the descriptors that
// createClient(), create(), toBinary() and fromBinary() accept. The same
// proto/ that the C build feeds to protoc-c is thus the only source of truth.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import path from "node:path";
import { fromBinary, createFileRegistry } from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const TESTS_DIR = path.resolve(HERE, "..");
export const SOURCE_DIR = process.env.BERTH_SOURCE_DIR || path.resolve(TESTS_DIR, "..");
export const PROTO_DIR = path.join(SOURCE_DIR, "proto");
export const BUF = path.join(TESTS_DIR, "node_modules", ".bin", "buf");

/** Environment for running buf: its cache in a temp dir when none is set. */
export function bufEnv() {
  const env = { ...process.env };
  if (!env.BUF_CACHE_DIR) env.BUF_CACHE_DIR = path.join(tmpdir(), "berth-tests-buf-cache");
  return env;
}

const cached = new Map();

/** The registry of every .proto file under `protoDir` (built once per process). */
export function protoRegistryOf(protoDir) {
  if (cached.has(protoDir)) return cached.get(protoDir);
  const dir = mkdtempSync(path.join(tmpdir(), "berth-proto-"));
  try {
    const out = path.join(dir, "image.binpb");
    execFileSync(BUF, ["build", protoDir, "--as-file-descriptor-set", "-o", out], {
      env: bufEnv(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    const set = fromBinary(FileDescriptorSetSchema, readFileSync(out));
    cached.set(protoDir, createFileRegistry(set));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return cached.get(protoDir);
}

/** The registry of every file in proto/ (built once per process). */
export function protoRegistry() {
  return protoRegistryOf(PROTO_DIR);
}

function must(kind, name, v) {
  if (!v) throw new Error(`${kind} ${name} not found in ${PROTO_DIR}`);
  return v;
}

export function getService(name) {
  return must("service", name, protoRegistry().getService(name));
}

export function getMessage(name) {
  return must("message", name, protoRegistry().getMessage(name));
}

export function getEnum(name) {
  return must("enum", name, protoRegistry().getEnum(name));
}

export const VM_PKG = "metal.vmprovisioner.v1";
export const VM_SERVICE = `${VM_PKG}.VmService`;

/** VmService plus its messages by short name: vm.service, vm.msg("CreateVmRequest"). */
export function vmProto() {
  return {
    service: getService(VM_SERVICE),
    msg: (short) => getMessage(`${VM_PKG}.${short}`),
    VmState: getEnum(`${VM_PKG}.VmState`),
  };
}
