/**
 * One setting's raw value (TOML value, or environment text) made into its typed value: the
 * per-key checks of type, range and allowed values. Checks across keys are in load.ts.
 */
import { parseDuration } from '../formats/duration';
import type { Setting, SettingValue } from './settings';

/** `input` as `setting`'s type, or undefined after adding the problem (naming `where`). */
export function coerce(
  setting: Setting,
  input: unknown,
  where: string,
  problems: string[],
): SettingValue | undefined {
  const fromEnv = typeof input === 'string';
  switch (setting.type) {
    case 'integer': {
      const n = fromEnv && /^-?\d+$/.test(input.trim()) ? Number(input) : input;
      if (typeof n !== 'number' && typeof n !== 'bigint') {
        problems.push(`${where}: expected an integer, got ${describe(input)}`);
        return undefined;
      }
      const num = Number(n);
      if (!Number.isSafeInteger(num)) {
        problems.push(`${where}: expected an integer, got ${describe(input)}`);
        return undefined;
      }
      if (setting.min !== undefined && num < setting.min) {
        problems.push(`${where}: must be at least ${setting.min}, got ${num}`);
        return undefined;
      }
      if (setting.max !== undefined && num > setting.max) {
        problems.push(`${where}: must be at most ${setting.max}, got ${num}`);
        return undefined;
      }
      return num;
    }
    case 'number': {
      const n = fromEnv && /^-?(\d+(\.\d*)?|\.\d+)$/.test(input.trim()) ? Number(input) : input;
      if (typeof n !== 'number' || !Number.isFinite(n)) {
        problems.push(`${where}: expected a number, got ${describe(input)}`);
        return undefined;
      }
      return inRange(setting, n, where, problems) ? n : undefined;
    }
    case 'table': {
      let table: unknown = input;
      if (fromEnv) {
        try {
          table = JSON.parse(input);
        } catch {
          problems.push(`${where}: expected a JSON object, got text that is not JSON`);
          return undefined;
        }
      }
      if (table === null || typeof table !== 'object' || Array.isArray(table)) {
        problems.push(`${where}: expected a table, got ${describe(table)}`);
        return undefined;
      }
      return table as Record<string, unknown>;
    }
    case 'duration': {
      const parsed = typeof input === 'string' ? parseDuration(input) : null;
      if (parsed === null) {
        problems.push(
          `${where}: expected a duration such as "20s", "30m" or "1h", got ${describe(input)}`,
        );
        return undefined;
      }
      return parsed;
    }
    case 'list': {
      if (setting.items === 'number') return numberList(setting, input, where, problems);
      const items = fromEnv
        ? input
            .split(',')
            .map((x) => x.trim())
            .filter((x) => x !== '')
        : input;
      if (!Array.isArray(items) || !items.every((x) => typeof x === 'string' && x.trim() !== '')) {
        problems.push(`${where}: expected a list of strings, got ${describe(input)}`);
        return undefined;
      }
      return items as string[];
    }
    case 'boolean': {
      if (typeof input === 'boolean') return input;
      if (fromEnv && /^(true|1|yes|on)$/i.test(input)) return true;
      if (fromEnv && /^(false|0|no|off)$/i.test(input)) return false;
      problems.push(`${where}: expected true or false, got ${describe(input)}`);
      return undefined;
    }
    case 'string':
    case 'path': {
      if (typeof input !== 'string' || input.trim() === '') {
        problems.push(`${where}: expected a non-empty string, got ${describe(input)}`);
        return undefined;
      }
      if (setting.oneOf && !setting.oneOf.includes(input)) {
        problems.push(`${where}: must be one of ${setting.oneOf.join(', ')}, got "${input}"`);
        return undefined;
      }
      return input;
    }
  }
}

function inRange(setting: Setting, n: number, where: string, problems: string[]): boolean {
  if (setting.min !== undefined && n < setting.min) {
    problems.push(`${where}: must be at least ${setting.min}, got ${n}`);
    return false;
  }
  if (setting.max !== undefined && n > setting.max) {
    problems.push(`${where}: must be at most ${setting.max}, got ${n}`);
    return false;
  }
  return true;
}

/** A list of numbers: a TOML array of numbers, or comma-separated numbers in the environment. */
function numberList(
  setting: Setting,
  input: unknown,
  where: string,
  problems: string[],
): number[] | undefined {
  const items = typeof input === 'string' ? input.split(',').map((x) => x.trim()) : input;
  const nums = Array.isArray(items)
    ? items.map((x) => (typeof x === 'string' && x !== '' ? Number(x) : x))
    : undefined;
  if (!nums || !nums.every((x): x is number => typeof x === 'number' && Number.isFinite(x))) {
    problems.push(`${where}: expected a list of numbers, got ${describe(input)}`);
    return undefined;
  }
  return nums.every((n) => inRange(setting, n, where, problems)) ? nums : undefined;
}

function describe(v: unknown): string {
  if (typeof v === 'string') return `"${v}"`;
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'a table';
  return String(v);
}
