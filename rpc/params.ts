import { z } from 'zod';
import { invalidParams } from './errors';

/**
 * Validates a method's params against its schema. Methods take named params only; problems
 * come back as -32602 with a message naming each field.
 */
export function parseParams<T extends z.ZodType>(schema: T, params: unknown): z.infer<T> {
  if (Array.isArray(params)) {
    if (params.length === 0) params = undefined;
    else throw invalidParams('Invalid params: params must be an object with named fields');
  }
  const result = schema.safeParse(params ?? {}, { reportInput: true });
  if (result.success) return result.data;
  throw invalidParams(`Invalid params: ${describeIssues(result.error.issues)}`);
}

function describeIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : 'params';
      if (issue.code === 'unrecognized_keys') {
        return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
      }
      if (issue.code === 'invalid_type' && issue.input === undefined) return `${where} is required`;
      if (issue.code === 'invalid_type') return `${where} must be ${article(issue.expected)}`;
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

const article = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

/** Params of methods that take none: absent, null, {} or []. */
export const noParams = z.strictObject({});
