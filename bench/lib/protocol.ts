/**
 * Messages between the orchestrator and its child processes (over Node's IPC pipe, never the
 * network), shared by both sides so they cannot drift apart.
 */

/** The bridge's HTTP gateway, reached over TCP with keep-alive instead of the Unix socket. */
export interface GatewayTarget {
  host: string;
  port: number;
  /** A gateway token (`Authorization: Bearer`). */
  token: string;
}

/** What the load generator is told to do. */
export interface LoadSpec {
  /** The JSON-RPC socket; ignored when `gateway` is set. */
  socketPath: string;
  /** Sends `POST /rpc` envelopes to the HTTP gateway instead of JSON-RPC to the socket. */
  gateway?: GatewayTarget;
  /** Method put in every request (the echo server answers any method alike). */
  method: string;
  connections: number;
  warmupMs: number;
  measureMs: number;
  /**
   * When set, a result whose `status` differs (e.g. `health` answering "unhealthy") is
   * counted in `unexpectedStatus`: a fast answer that says the server is degraded.
   */
  expectResultStatus?: string;
  /** A response slower than this fails the run instead of hanging it. */
  requestTimeoutMs: number;
  /** Processes whose CPU time is sampled at the edges of the measured window, by role. */
  watchPids: Record<string, number>;
}

export interface LatencySummaryMs {
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** What the load generator reports for one measured window. */
export interface LoadResult {
  /** Successful responses completed inside the window. */
  requests: number;
  /** Responses carrying a JSON-RPC `error`, inside the window. */
  errors: number;
  /** Successful responses whose result `status` was not `expectResultStatus` (also in `requests`). */
  unexpectedStatus: number;
  /** The first such result, to show why (e.g. which health check failed). */
  unexpectedSample?: unknown;
  windowMs: number;
  requestsPerSecond: number;
  /** Latency of the successful requests completed inside the window; null if none did. */
  latencyMs: LatencySummaryMs | null;
  /** Fewest and most requests one connection completed: shows whether the server is fair. */
  perConnectionRequests: { min: number; max: number };
  /**
   * Share of one CPU each watched process used during the window (100 = one core busy), plus
   * `client` (the load generator), `machine` (all processes) and `other` (machine minus ours).
   */
  cpuPercent: Record<string, number | null>;
}

export type ChildMessage =
  { type: 'ready' } | { type: 'result'; result: LoadResult } | { type: 'failed'; reason: string };

export type ParentMessage = { type: 'run'; spec: LoadSpec };
