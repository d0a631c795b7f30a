/**
 * Durations for the RPC layer's params (`ttl`): the parser itself lives in formats/duration.ts,
 * import-free, so config/ reads duration settings with the same code without importing services/.
 */
export { parseDuration } from '../formats/duration';
