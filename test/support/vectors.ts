/** Where the real vectors live, and typed access to expected.json. */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repo root: tests run compiled from dist/test/<dir>/. */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
/** The compiled tree these tests run from (dist/, or a private out dir while developing). */
export const DIST = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The CLI of the same build as the running test. */
export const CLI = resolve(DIST, "proxy/cli/main.js");
/** The real vectors, copied byte-exact with their provenance (test/fixtures/README.md). */
export const VECTORS = resolve(REPO, "test/fixtures/vectors");

export interface ExpectedSgx {
  path: string;
  mrenclave: string;
  mrsigner: string;
  isvProdId: number;
  isvSvn: number;
  debug: boolean;
  reportData: string;
  fmspc: string | null;
  certDataType: number;
  signatures: "valid" | "invalid" | "unverifiable-offline";
  collateral?: string;
  at?: string;
  tcbStatus?: string;
  advisoryIds?: string[];
  note?: string;
}

export interface ExpectedTdx {
  path: string;
  collateral: string;
  at: string;
  tcbStatus?: string;
  advisoryIds?: string[];
}

export const expected = JSON.parse(readFileSync(join(VECTORS, "expected.json"), "utf8")) as {
  sgxQuotes: ExpectedSgx[];
  tdxQuotes: ExpectedTdx[];
};

export function vector(path: string): Uint8Array {
  return new Uint8Array(readFileSync(join(VECTORS, path)));
}

export function vectorPath(path: string): string {
  return join(VECTORS, path);
}
