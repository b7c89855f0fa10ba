/**
 * GET /healthz: 200 when the identity holds a valid certificate (no failed rotation) and the
 * upstream answers; 503 with the reasons otherwise. For an HTTP or unix upstream "answers" is a
 * connection within a bound; for a stdio upstream it is that the command can be executed and its
 * children start (upstream/stdio/starts.ts), and that the session pool is not full with nothing idle.
 */
import { constants } from "node:fs";
import { access } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { connect } from "node:net";
import { delimiter, isAbsolute, join, resolve } from "node:path";
import type { Upstream } from "./config.js";
import type { Identity } from "../attest/identity.js";

const CONNECT_TIMEOUT_MS = 1000;

function reachable(opts: { host: string; port: number } | { path: string }): Promise<string | null> {
  return new Promise((done) => {
    const s = connect(opts);
    const t = setTimeout(() => {
      s.destroy();
      done(`upstream did not accept a connection within ${CONNECT_TIMEOUT_MS} ms`);
    }, CONNECT_TIMEOUT_MS);
    s.once("connect", () => {
      clearTimeout(t);
      s.destroy();
      done(null);
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      done(`upstream connection failed (${e.code ?? e.message})`);
    });
  });
}

async function executable(command: string, cwd: string): Promise<string | null> {
  const candidates = command.includes("/")
    ? [isAbsolute(command) ? command : resolve(cwd, command)]
    : (process.env.PATH ?? "")
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, command));
  for (const c of candidates) {
    try {
      await access(c, constants.X_OK);
      return null;
    } catch {
      // try the next
    }
  }
  return `upstream command "${command}" is not executable here`;
}

/** `stdio`: what the running stdio upstream knows of its children and sessions. */
export function upstreamProbe(u: Upstream, stdio?: () => Promise<string | null>): () => Promise<string | null> {
  if (u.kind === "http") return () => reachable({ host: u.host, port: u.port });
  if (u.kind === "unix") return () => reachable({ path: u.path });
  return async () => (await executable(u.command[0]!, u.cwd ?? process.cwd())) ?? (stdio ? await stdio() : null);
}

export function createHealth(identity: Identity, probe: () => Promise<string | null>): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    probe().then(
      (upstreamProblem) => {
        const problems: string[] = [];
        if (!identity.healthy) problems.push(`certificate: ${Date.now() >= identity.current.notAfter.getTime() ? "expired" : "the last rotation failed"}`);
        if (upstreamProblem) problems.push(upstreamProblem);
        const body = JSON.stringify(
          problems.length ? { status: "unavailable", problems } : { status: "ok", certificateNotAfter: identity.current.notAfter.toISOString(), certificateSha256: identity.current.fingerprint },
        );
        res.writeHead(problems.length ? 503 : 200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
        res.end(body);
      },
      () => {
        res.writeHead(503, { "Content-Type": "application/json" });
        res.end('{"status":"unavailable"}');
      },
    );
  };
}
