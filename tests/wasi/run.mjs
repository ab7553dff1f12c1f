// Cargo runner for wasm32-wasip1 test binaries: runs libtest under Node's WASI
// so the core's tests execute as 32-bit wasm, like the shipped filter. The
// core crate does not link proxy-wasm, so a test binary imports nothing but
// WASI: any other import fails instantiation (the boundary, checked again).
import { readFile } from 'node:fs/promises';
import { WASI } from 'node:wasi';
import process from 'node:process';

const [file, ...args] = process.argv.slice(2);
const wasi = new WASI({
  version: 'preview1',
  args: [file, ...args],
  env: process.env,
  preopens: { '/': '/' },
  returnOnExit: true,
});
const module = await WebAssembly.compile(await readFile(file));
// `wasiImport` (rather than getImportObject) also exists on Node 18.
const instance = await WebAssembly.instantiate(module, {
  wasi_snapshot_preview1: wasi.wasiImport,
});
process.exitCode = wasi.start(instance);
