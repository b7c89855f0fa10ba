/** Collateral in dcap-qvl's shape, built from a PCS-layout directory (for the differential oracle). */
import { partsFromPcsDirectory } from "../../proxy/evidence/dcap/collateral-files.js";
import { partsToQvl } from "./mutate.js";

export async function qvlCollateralFromDir(dir: string): Promise<Record<string, string>> {
  return partsToQvl(await partsFromPcsDirectory(dir));
}
