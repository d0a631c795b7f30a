/**
 * Loads the end-to-end encryption's WebAssembly module (`@matrix-org/matrix-sdk-crypto-wasm`)
 * without its `name` section. V8 keeps a module's bytes for as long as the module lives (it
 * compiles each function from them on first call), and the names are 1.2 MB of the 5.4: they
 * only label the Rust code's frames in stack traces, while its panics are reported by message
 * and source line. When the package does not look as this expects (a new version), its own
 * loader is used instead.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import * as Rust from '@matrix-org/matrix-sdk-crypto-wasm';

const PACKAGE = '@matrix-org/matrix-sdk-crypto-wasm';
const WASM_FILE = path.join('pkg', 'matrix_sdk_crypto_wasm_bg.wasm');

// Just the WebAssembly surface used here (the project compiles without the DOM library).
type WasmExports = Record<string, unknown>;
type WasmModule = object;
declare const WebAssembly: {
  compile(bytes: Uint8Array): Promise<WasmModule>;
  instantiate(
    module: WasmModule,
    imports: Record<string, unknown>,
  ): Promise<{ exports: WasmExports }>;
  Module: { imports(module: WasmModule): Array<{ module: string }> };
};

/** The generated bindings' hook for the instance (exported by the package's Node entry). */
interface Bindings {
  __wbg_set_wasm?: (exports: WasmExports) => void;
}

let loaded: Promise<void> | undefined;

/** Loads and starts the module once per process; later calls wait for the first. */
export function initCryptoWasm(): Promise<void> {
  loaded ??= load().catch((err: unknown) => {
    loaded = undefined;
    throw err;
  });
  return loaded;
}

async function load(): Promise<void> {
  const setWasm = (Rust as unknown as Bindings).__wbg_set_wasm;
  const file = path.join(path.dirname(require.resolve(PACKAGE)), WASM_FILE);
  if (typeof setWasm !== 'function') return Rust.initAsync();
  let bytes: Uint8Array;
  try {
    bytes = withoutCustomSection(await readFile(file), 'name');
  } catch {
    return Rust.initAsync();
  }
  const module = await WebAssembly.compile(bytes);
  // The bindings are the module's only import namespace; its name is whatever the build chose.
  const imports: Record<string, unknown> = {};
  for (const { module: ns } of WebAssembly.Module.imports(module)) imports[ns] = Rust;
  const instance = await WebAssembly.instantiate(module, imports);
  setWasm(instance.exports);
  (instance.exports.__wbindgen_start as (() => void) | undefined)?.();
}

/** A LEB128 unsigned integer at `at`: its value and where the next field starts. */
function uleb128(bytes: Uint8Array, at: number): [value: number, next: number] {
  let value = 0;
  for (let shift = 0; shift < 35; shift += 7) {
    if (at >= bytes.length) break;
    const byte = bytes[at++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return [value, at];
  }
  throw new Error('malformed WebAssembly: bad length');
}

/**
 * `bytes` (a WebAssembly binary) without the custom sections called `name`; every other section
 * is kept as it was, in order. Throws on a binary it cannot walk.
 */
export function withoutCustomSection(bytes: Uint8Array, name: string): Uint8Array {
  const MAGIC = [0x00, 0x61, 0x73, 0x6d];
  if (bytes.length < 8 || MAGIC.some((b, i) => bytes[i] !== b)) {
    throw new Error('not a WebAssembly binary');
  }
  const kept: Uint8Array[] = [bytes.subarray(0, 8)];
  for (let at = 8; at < bytes.length;) {
    const start = at;
    const id = bytes[at]!;
    const [size, body] = uleb128(bytes, at + 1);
    const end = body + size;
    if (end > bytes.length) throw new Error('malformed WebAssembly: section past the end');
    let drop = false;
    if (id === 0) {
      const [length, text] = uleb128(bytes, body);
      drop = Buffer.from(bytes.subarray(text, text + length)).toString('utf8') === name;
    }
    if (!drop) kept.push(bytes.subarray(start, end));
    at = end;
  }
  return Buffer.concat(kept);
}
