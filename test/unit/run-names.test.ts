import { RunNames } from '../../rpc/methods/containers';

describe('RunNames: container names of the spec, one per start', () => {
  const t = 1_738_864_000_000;

  test('the first start of a second takes the bare name, the next ones -2, -3…', () => {
    const names = new RunNames();
    expect([0, 10, 500, 999].map((ms) => names.next('openclaw', t + ms))).toEqual([
      'armorclaw-openclaw-1738864000',
      'armorclaw-openclaw-1738864000-2',
      'armorclaw-openclaw-1738864000-3',
      'armorclaw-openclaw-1738864000-4',
    ]);
  });

  test('each agent type counts on its own; a new second starts again', () => {
    const names = new RunNames();
    expect(names.next('openclaw', t)).toBe('armorclaw-openclaw-1738864000');
    expect(names.next('echo', t)).toBe('armorclaw-echo-1738864000');
    expect(names.next('openclaw', t)).toBe('armorclaw-openclaw-1738864000-2');
    expect(names.next('openclaw', t + 1000)).toBe('armorclaw-openclaw-1738864001');
    expect(names.next('echo', t + 1000)).toBe('armorclaw-echo-1738864001');
  });

  test('a burst of 50 in one second: 50 different names', () => {
    const names = new RunNames();
    const burst = Array.from({ length: 50 }, () => names.next('openclaw', t + 300));
    expect(new Set(burst).size).toBe(50);
  });
});
