/**
 * The one result type of a check: a value, or why it failed. Checks return it instead of
 * throwing, so that a verifier runs every check and reports each; a caller that must throw instead
 * (collateralKeyOf) takes the failure's `code`, never text parsed out of `reason`.
 */
import type { ErrorCode } from "./errors.js";

export interface Ok<T> {
  readonly ok: true;
  readonly value: T;
}

export interface Failed {
  readonly ok: false;
  /** For people: what failed and why (no code in it). */
  readonly reason: string;
  /** Set where the failure has a catalogue code of its own. */
  readonly code?: ErrorCode;
}

export type Result<T = string> = Ok<T> | Failed;

/** The first failed check of a verdict: which check, and why. */
export interface Failure<C extends string = string> {
  check: C;
  reason: string;
}
