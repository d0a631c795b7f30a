/**
 * matrix-js-sdk, loaded the first time the bridge talks to a homeserver rather than when it
 * starts: a bridge without Matrix configured never holds it (about 16 MB).
 */
import type * as Sdk from 'matrix-js-sdk';

let loaded: typeof Sdk | undefined;

export function matrixSdk(): typeof Sdk {
  loaded ??= require('matrix-js-sdk') as typeof Sdk;
  return loaded;
}

/** The SDK's MatrixError (never one while the SDK is not loaded: nothing could have thrown it). */
export function isMatrixError(err: unknown): err is Sdk.MatrixError {
  return loaded !== undefined && err instanceof loaded.MatrixError;
}
