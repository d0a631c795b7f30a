import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Keystore, keystorePath } from '../../services/keystore';
import { LiveLeakGuard } from '../../services/leak-guard';

const NOW = 1_738_864_000;
let dir: string;
let clock: number;
const masterKey = randomBytes(32);

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'armorclaw-leak-live-'));
  clock = NOW;
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

const open = () => Keystore.open({ dbPath: keystorePath(dir), masterKey, now: () => clock });

describe('the leak guard over the keystore', () => {
  test('follows keys added and removed, also by another process', () => {
    const bridge = open();
    const cli = open(); // another connection to the same file, as the CLI's add-key is
    try {
      const guard = new LiveLeakGuard(bridge);
      bridge.store({ id: 'a', provider: 'openai', token: 'sk-first-token-0001' });
      expect(guard.current().scan('x sk-first-token-0001 y')).toMatchObject({ leaked: true });
      expect(guard.current().scan('sk-second-token-0002').leaked).toBe(false);

      cli.store({ id: 'b', provider: 'anthropic', token: 'sk-second-token-0002' });
      expect(guard.current().scan('sk-second-token-0002')).toEqual({
        leaked: true,
        keyIds: ['b'],
        encodings: ['raw'],
      });

      cli.delete('a');
      expect(guard.current().scan('sk-first-token-0001').leaked).toBe(false);
    } finally {
      cli.close();
      bridge.close();
    }
  });

  test('is not rebuilt while nothing changed', () => {
    const store = open();
    try {
      store.store({ id: 'a', provider: 'openai', token: 'sk-first-token-0001' });
      const guard = new LiveLeakGuard(store);
      expect(guard.current()).toBe(guard.current());
    } finally {
      store.close();
    }
  });

  test('guards expired keys too: a leaked expired key is still a leak', () => {
    const store = open();
    try {
      store.store({
        id: 'old',
        provider: 'openai',
        token: 'sk-expired-token-0003',
        expires_at: NOW + 10,
      });
      clock = NOW + 60;
      expect(() => store.get('old')).toThrow(/expired/);
      expect(store.tokensForLeakGuard()).toEqual([{ id: 'old', token: 'sk-expired-token-0003' }]);
      expect(new LiveLeakGuard(store).current().scan('sk-expired-token-0003').leaked).toBe(true);
    } finally {
      store.close();
    }
  });
});
