/**
 * `attestable-mcp-proxy/dev`: development evidence without SGX. `DevProvider` signs real-format
 * DCAP quotes with a local dev PKI (its root is not Intel's: evidence from it satisfies only a
 * policy that trusts that root), `devMrenclave` is the measurement it reports for a directory,
 * and `devCollateral` / `writeCollateralDirectory` produce matching collateral. No other entry
 * loads any of it.
 */
export { DevProvider, devMrenclave, devMrtd } from "../attest/dev/provider.js";
export type { DevProviderOptions } from "../attest/dev/provider.js";
export { openDevPki, DEFAULT_DEV_DIR } from "../attest/dev/pki.js";
export type { DevPki } from "../attest/dev/pki.js";
export { devCollateral, writeCollateralDirectory } from "../attest/dev/collateral.js";
export type { DevCollateralOptions } from "../attest/dev/collateral.js";
