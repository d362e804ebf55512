#!/usr/bin/env node
// Checks that the native packages really load after `npm ci` (npm 11 may skip install
// scripts): zeromq and @node-rs/xxhash ship prebuilt binaries; node-llama-cpp must find its
// prebuilt CPU binary with building and downloading forbidden (build: "never",
// skipDownload: true) — the project never builds or downloads llama.cpp.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const zmq = require("zeromq");
new zmq.Publisher().close();
const { xxh64 } = require("@node-rs/xxhash");
if (xxh64(Buffer.from("llmd"), 0n) === 0n) throw new Error("xxhash returned 0");
process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
const { getLlama } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: 1 });
console.log(`native packages ok: zeromq ${zmq.version}, xxhash, node-llama-cpp ${llama.buildType} (gpu: ${llama.gpu})`);
await llama.dispose();
