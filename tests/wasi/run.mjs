// Cargo runner for wasm32-wasip1 test binaries: runs libtest under Node's WASI
// so the core's tests execute as 32-bit wasm, like the shipped filter.
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
const imports = { wasi_snapshot_preview1: wasi.wasiImport };
// The crate links proxy-wasm, whose host functions (module `env`, `proxy_*`)
// are imported even though the core's tests never call them. Satisfy them with
// stubs that fail loudly if a test ever does.
for (const imp of WebAssembly.Module.imports(module)) {
  if (imp.kind !== 'function' || imports[imp.module]?.[imp.name]) continue;
  imports[imp.module] ??= {};
  imports[imp.module][imp.name] = () => {
    throw new Error(`host function ${imp.module}.${imp.name} called outside a proxy-wasm host`);
  };
}
const instance = await WebAssembly.instantiate(module, imports);
// The filter's reactor entry point (`_initialize`, from proxy-wasm's `main!`)
// is linked into the test binaries too; WASI refuses to `start` a module that
// has both, and the tests never need the filter registered.
const { _initialize, ...commandExports } = instance.exports;
process.exitCode = wasi.start({ exports: commandExports });
