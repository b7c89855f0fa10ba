/** Loopback servers, a forwarder front and small request helpers for the forwarding tests. */
import http from "node:http";
import type { IncomingMessage, RequestListener, Server, IncomingHttpHeaders } from "node:http";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { spawn, type ChildProcess } from "node:child_process";
import { pino } from "pino";
import { createForwarder, type ForwardOptions, type Forwarder } from "../../proxy/server/upstream/http/forward.js";
import type { ProxyHooks } from "../../proxy/server/hooks.js";
import { sleep, within } from "./wait.js";

export const LOOPBACK = "127.0.0.1";

export async function listen(server: net.Server, where: number | string = 0): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const done = (): void => {
      server.off("error", reject);
      resolve();
    };
    if (typeof where === "string") server.listen(where, done);
    else server.listen(where, LOOPBACK, done);
  });
}

export function portOf(server: net.Server): number {
  return (server.address() as AddressInfo).port;
}

/** Closes a server and every connection it still holds. */
export async function shut(server: net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  await within(new Promise<void>((r) => server.close(() => r())), 5000, "server close");
}

/** A port nobody listens on (right now). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await listen(s);
  const port = portOf(s);
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface Upstream {
  server: Server;
  port: number;
  /** http://127.0.0.1:PORT (TCP listeners). */
  base: string;
  close(): Promise<void>;
}

export async function startUpstream(handler: RequestListener, where: number | string = 0): Promise<Upstream> {
  const server = http.createServer(handler);
  await listen(server, where);
  const port = typeof where === "string" ? 0 : portOf(server);
  return { server, port, base: `http://${LOOPBACK}:${port}`, close: () => shut(server) };
}

export interface RecordedHooks extends ProxyHooks {
  events: string[];
}

export function recordingHooks(): RecordedHooks {
  const events: string[] = [];
  return {
    events,
    upstreamError: (kind) => void events.push(`error:${kind}`),
    streamOpened: (kind) => void events.push(`open:${kind}`),
    streamClosed: (kind) => void events.push(`close:${kind}`),
  };
}

export interface Front {
  fwd: Forwarder;
  server: Server;
  port: number;
  hooks: RecordedHooks;
  close(): Promise<void>;
}

/** A plain HTTP front (the TLS listener's stand-in) that hands everything to the forwarder. */
export async function startFront(opts: Partial<ForwardOptions> & Pick<ForwardOptions, "target">): Promise<Front> {
  const hooks = recordingHooks();
  const fwd = createForwarder({ log: pino({ level: "silent" }), hooks, ...opts });
  const server = http.createServer((req, res) => fwd.handle(req, res));
  server.on("upgrade", (req: IncomingMessage, socket, head: Buffer) => fwd.upgrade(req, socket, head));
  await listen(server);
  return {
    fwd,
    server,
    port: portOf(server),
    hooks,
    close: async () => {
      fwd.close();
      await shut(server);
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/** One request without connection reuse; the body is collected. */
export function request(port: number, options: http.RequestOptions, body?: Buffer | string): Promise<Reply> {
  return within(
    new Promise<Reply>((resolve, reject) => {
      const req = http.request({ host: LOOPBACK, port, agent: false, ...options }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    }),
    10_000,
    `${options.method ?? "GET"} ${options.path ?? "/"}`,
  );
}

/** Spawns a node script and kills it (bounded) on `stop()`. */
export function spawnNode(args: string[], env: NodeJS.ProcessEnv): { child: ChildProcess; output: () => string; stop: () => Promise<void> } {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  const keep = (d: Buffer): void => {
    if (output.length < 64 * 1024) output += d.toString("utf8");
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const exited = new Promise<void>((r) => {
    if (child.exitCode !== null || child.signalCode !== null) r();
    else child.once("exit", () => r());
  });
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      try {
        await within(exited, 3000, "child exit");
      } catch {
        child.kill("SIGKILL");
        await within(exited, 3000, "child exit after SIGKILL");
      }
    },
  };
}

/** Waits until something accepts TCP connections on the port: at most `attempts` tries, `delayMs` apart. */
export async function waitForPort(port: number, attempts = 100, delayMs = 100): Promise<void> {
  for (let i = 0; i < attempts; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: LOOPBACK, port });
      s.setTimeout(1000);
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
      s.once("timeout", () => {
        s.destroy();
        resolve(false);
      });
    });
    if (ok) return;
    await sleep(delayMs);
  }
  throw new Error(`nothing accepted connections on ${LOOPBACK}:${port} after ${attempts} attempts`);
}

/** An upstream that accepts connections and never answers; `held` is what it holds open now. */
export async function startSilentUpstream(): Promise<{ server: net.Server; port: number; held: Set<net.Socket>; close(): Promise<void> }> {
  const held = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    held.add(sock);
    sock.on("error", () => {});
    sock.on("close", () => held.delete(sock));
    sock.resume();
  });
  await listen(server);
  return {
    server,
    port: portOf(server),
    held,
    close: async () => {
      for (const sock of held) sock.destroy();
      await shut(server);
    },
  };
}
