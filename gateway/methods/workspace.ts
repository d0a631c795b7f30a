/**
 * The spec's coding-workspace methods. They answer from a code index (files, symbols, routes) of
 * a developer's workspace, which a bridge that runs agents in sealed containers does not keep.
 * They are registered, so their scopes, rate limits and audit apply like every method's, and
 * each answers NOT_FOUND saying so, instead of a made-up result.
 */
import { notFound, type GatewayMethods } from '../protocol';

export const WORKSPACE_METHODS = [
  'advisor.file_change',
  'advisor.explain_function',
  'workspace.status',
  'workspace.semantic_search',
  'trace.ingest',
] as const;

export function registerWorkspaceMethods(methods: GatewayMethods): void {
  for (const name of WORKSPACE_METHODS) {
    methods.add(name, async () => {
      throw notFound(
        `${name} is not available: this bridge keeps no code index of a workspace (see docs/gateway.md, "Coding-workspace methods")`,
      );
    });
  }
}
