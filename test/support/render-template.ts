/**
 * A renderer for the small Jinja subset our Gramine manifest templates use, so tests can render
 * them without gramine-manifest (Python, Gramine installed):
 *   - `{{ name }}` and `{{ a.b }}`: a variable (strings and numbers only),
 *   - `{{ gramine.runtimedir() }}`: a call of a function-valued variable, no arguments,
 *   - `{# comment #}`: dropped.
 * Anything else (`{% ... %}` statements, filters, whitespace control, unknown variables) throws, so
 * a template that starts using more of Jinja fails its test until this renderer learns it.
 */

export type TemplateValue = string | number | (() => string) | { [key: string]: TemplateValue };
export type TemplateVars = Record<string, TemplateValue>;

/** The `gramine` namespace gramine-manifest provides, with sample paths. */
export function gramineNamespace(opts: { runtimedir: string; libos: string }): TemplateVars {
  return { runtimedir: () => opts.runtimedir, libos: opts.libos };
}

export class TemplateError extends Error {}

export function renderTemplate(text: string, vars: TemplateVars): string {
  let out = text.replace(/\{#[\s\S]*?#\}/g, "");
  const statement = /\{%[\s\S]*?%\}/.exec(out);
  if (statement) throw new TemplateError(`unsupported Jinja statement ${statement[0]} (this renderer knows {{ var }} only)`);
  out = out.replace(/\{\{([\s\S]*?)\}\}/g, (whole, inner: string) => {
    const m = /^\s*([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\(\))?\s*$/.exec(inner);
    if (!m) throw new TemplateError(`unsupported Jinja expression ${whole}`);
    const path = m[1]!.split(".");
    let value: TemplateValue | undefined = vars;
    for (const part of path) {
      if (value === undefined || typeof value !== "object" || !Object.hasOwn(value, part)) {
        throw new TemplateError(`undefined template variable ${m[1]} in ${whole}`);
      }
      value = (value as Record<string, TemplateValue>)[part];
    }
    if (m[2]) {
      if (typeof value !== "function") throw new TemplateError(`${m[1]} is not callable in ${whole}`);
      value = value();
    }
    if (typeof value !== "string" && typeof value !== "number") {
      throw new TemplateError(`${m[1]} is not a string or number in ${whole}`);
    }
    return String(value);
  });
  if (out.includes("{{") || out.includes("{%")) throw new TemplateError("unbalanced Jinja delimiters left after rendering");
  return out;
}
