// The end-to-end encryption's WebAssembly loaded without its names (matrix/crypto-wasm.ts): the
// custom `name` section is cut and nothing else; the real module still compiles and runs.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import * as Rust from '@matrix-org/matrix-sdk-crypto-wasm';
import { initCryptoWasm, withoutCustomSection } from '../../matrix/crypto-wasm';

jest.setTimeout(30_000);

// The global WebAssembly API (the project's types leave out the DOM library that declares it).
const Wasm: any = (globalThis as any).WebAssembly;

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
const custom = (name: string, payload: number[]) => {
  const body = [name.length, ...Buffer.from(name), ...payload];
  return [0x00, body.length, ...body];
};
// One function type, () -> ().
const TYPES = [0x01, 0x04, 0x01, 0x60, 0x00, 0x00];

const CRYPTO_WASM = path.join(
  path.dirname(require.resolve('@matrix-org/matrix-sdk-crypto-wasm')),
  'pkg',
  'matrix_sdk_crypto_wasm_bg.wasm',
);

describe('withoutCustomSection', () => {
  it('drops the custom sections of that name and keeps every other section in order', () => {
    const input = Uint8Array.from([
      ...HEADER,
      ...custom('name', [1, 2, 3]),
      ...TYPES,
      ...custom('keep', [9]),
      ...custom('name', []),
    ]);
    expect(Wasm.validate(input)).toBe(true);
    const out = withoutCustomSection(input, 'name');
    expect([...out]).toEqual([...HEADER, ...TYPES, ...custom('keep', [9])]);
    expect(Wasm.validate(out)).toBe(true);
    // Nothing to drop: the same bytes.
    expect([...withoutCustomSection(out, 'name')]).toEqual([...out]);
  });

  it('refuses what is not a WebAssembly binary or runs past its end', () => {
    expect(() => withoutCustomSection(Buffer.from('not wasm at all'), 'name')).toThrow(
      'not a WebAssembly binary',
    );
    const truncated = Uint8Array.from([...HEADER, 0x01, 0x09, 0x01, 0x60]);
    expect(() => withoutCustomSection(truncated, 'name')).toThrow('section past the end');
    const endless = Uint8Array.from([...HEADER, 0x01, 0xff, 0xff]);
    expect(() => withoutCustomSection(endless, 'name')).toThrow('bad length');
  });

  it('takes the names out of the crypto module, 1 MB and more, and nothing it runs on', () => {
    const bytes = readFileSync(CRYPTO_WASM);
    const stripped = withoutCustomSection(bytes, 'name');
    const full = new Wasm.Module(bytes);
    const cut = new Wasm.Module(stripped);
    expect(Wasm.Module.customSections(full, 'name')).toHaveLength(1);
    expect(Wasm.Module.customSections(cut, 'name')).toHaveLength(0);
    const nameBytes = Wasm.Module.customSections(full, 'name')[0]!.byteLength;
    expect(nameBytes).toBeGreaterThan(1_000_000);
    expect(bytes.length - stripped.length).toBeGreaterThan(nameBytes);
    expect(Wasm.Module.exports(cut)).toEqual(Wasm.Module.exports(full));
    expect(Wasm.Module.imports(cut)).toEqual(Wasm.Module.imports(full));
  });
});

describe('initCryptoWasm', () => {
  it('starts the crypto from the module without names, once', async () => {
    const compile = jest.spyOn(Wasm, 'compile');
    await Promise.all([initCryptoWasm(), initCryptoWasm()]);
    await initCryptoWasm();
    expect(compile).toHaveBeenCalledTimes(1);
    const compiled = compile.mock.calls[0]![0] as Uint8Array;
    expect(compiled.byteLength).toBe(
      withoutCustomSection(readFileSync(CRYPTO_WASM), 'name').byteLength,
    );
    compile.mockRestore();
    // The bindings run on that instance: a machine can be made and has keys.
    const machine = await Rust.OlmMachine.initialize(
      new Rust.UserId('@bot:example.test'),
      new Rust.DeviceId('UNITWASM'),
    );
    expect(machine.identityKeys.ed25519.toBase64()).toMatch(/^[A-Za-z0-9+/]{43}$/);
    machine.close();
  });
});
