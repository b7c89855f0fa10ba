/**
 * A minimal, strict DER reader. Pure; no I/O; no copies (every byte result is a subarray of the
 * input). Everything it refuses is a DerError with a stable code:
 *   DER_TRUNCATED  an element (or its header) runs past the end of the data
 *   DER_LENGTH     a length that overflows its enclosing element, or a non-minimal / oversized length
 *   DER_INDEFINITE the BER indefinite length form
 *   DER_TAG        high-tag-number form, end-of-contents, or an unexpected tag
 *   DER_DEPTH      nesting deeper than MAX_DEPTH
 *   DER_TRAILING   bytes left after the element that should have been the last one
 *   DER_INTEGER / DER_BOOLEAN / DER_BITSTRING / DER_NULL / DER_OID / DER_TIME / DER_STRING
 *                  a primitive whose content is not valid DER for its type
 *   DER_RANGE      caller passed an offset / end outside the buffer
 * Offsets in errors are relative to the buffer the caller passed.
 */
export * from "./der-reader.js";
export * from "./der-primitives.js";
export * from "./der-time.js";
export * from "./der-strings.js";
