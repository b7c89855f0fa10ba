/**
 * Building Intel's SGX extension (OID 1.2.840.113741.1.13.1) for dev PCK certificates, laid out
 * byte for byte as in Intel's PCK certificates (see pck.ts for the structure):
 *
 *   SEQUENCE {
 *     SEQUENCE { .1 PPID OCTET STRING(16) }
 *     SEQUENCE { .2 TCB SEQUENCE { SEQUENCE { .2.1 INTEGER } … { .2.16 INTEGER },
 *                                  SEQUENCE { .2.17 PCESVN INTEGER }, SEQUENCE { .2.18 CPUSVN OCTET STRING(16) } } }
 *     SEQUENCE { .3 PCE-ID OCTET STRING(2) }
 *     SEQUENCE { .4 FMSPC OCTET STRING(6) }
 *     SEQUENCE { .5 SGX Type ENUMERATED }
 *     [SEQUENCE { .6 PlatformInstanceID OCTET STRING(16) }]           (Platform CA certificates)
 *     [SEQUENCE { .7 Configuration SEQUENCE { SEQUENCE { .7.N BOOLEAN } … } }]
 *   }
 *
 * The extension is non-critical, as in Intel's. Pure; bad values are InputError SGX_EXTENSION_BUILD.
 */
import { bool, enumerated, int, octetString, oid, seq } from "./der-write.js";
import { InputError } from "../../core/errors.js";
import { SGX_EXTENSION_OID, type PckExtension } from "../../evidence/asn1/sgx-extension.js";
import type { ExtensionSpec } from "./x509.js";

/** The same fields `parsePckExtension` reads, so a parsed extension rebuilds to itself. */
export type SgxExtensionSpec = PckExtension;

function fail(message: string): never {
  throw new InputError("SGX_EXTENSION_BUILD", `SGX extension: ${message}`);
}

function octets(v: Uint8Array, size: number, what: string): Uint8Array {
  if (!(v instanceof Uint8Array) || v.length !== size) fail(`${what} must be ${size} bytes`);
  return octetString(v);
}

function small(v: number, max: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v > max) fail(`${what} ${String(v)} is not an integer in 0..${max}`);
  return v;
}

const field = (arc: string, value: Uint8Array): Uint8Array => seq(oid(`${SGX_EXTENSION_OID}.${arc}`), value);

/** The extension value (DER) alone. */
export function encodeSgxExtension(p: SgxExtensionSpec): Uint8Array {
  if (!Array.isArray(p.tcbComponents) || p.tcbComponents.length !== 16) fail("tcbComponents must hold 16 values");
  const tcb = seq(
    ...p.tcbComponents.map((c, i) => field(`2.${i + 1}`, int(small(c, 0xff, `tcbComponents[${i}]`)))),
    field("2.17", int(small(p.pceSvn, 0xffff, "pceSvn"))),
    field("2.18", octets(p.cpuSvn, 16, "cpuSvn")),
  );
  const fields = [
    field("1", octets(p.ppid, 16, "ppid")),
    field("2", tcb),
    field("3", octets(p.pceId, 2, "pceId")),
    field("4", octets(p.fmspc, 6, "fmspc")),
    field("5", enumerated(small(p.sgxType, 0xff, "sgxType"))),
  ];
  if (p.platformInstanceId !== undefined) fields.push(field("6", octets(p.platformInstanceId, 16, "platformInstanceId")));
  if (p.configuration !== undefined) {
    const c = p.configuration;
    const flags: Uint8Array[] = [];
    if (c.dynamicPlatform !== undefined) flags.push(field("7.1", bool(c.dynamicPlatform)));
    if (c.cachedKeys !== undefined) flags.push(field("7.2", bool(c.cachedKeys)));
    if (c.smtEnabled !== undefined) flags.push(field("7.3", bool(c.smtEnabled)));
    fields.push(field("7", seq(...flags)));
  }
  return seq(...fields);
}

/** The SGX extension of a PCK certificate (non-critical). */
export function buildSgxExtension(p: SgxExtensionSpec): ExtensionSpec {
  return { oid: SGX_EXTENSION_OID, critical: false, value: encodeSgxExtension(p) };
}
