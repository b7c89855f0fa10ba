/**
 * The three things the benchmark measures, brought up on loopback:
 * - the upstream (scripts/bench/upstream.ts) as a child process: "direct";
 * - nginx as a TLS 1.3 reverse proxy to it: non-daemon child, one worker, its own prefix, config,
 *   error log, pid and temp paths inside the run's temp dir, ECDSA certificates made by openssl;
 * - `serve` (dist/proxy/cli/main.js) as a child with a config written here: dev attestation in a
 *   temp dir, HTTP upstream, no metrics listener, silent log. Its port comes from its banner.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { loadConfig } from "../../proxy/server/config.js";
import { childPids, freePort, LOOPBACK, runSync, sleep, waitForMatch, waitForPort, type Children, type Tracked } from "./proc.js";

export type KeyType = "P-384" | "P-256";

export interface Upstream {
  proc: Tracked;
  port: number;
  base: string;
}

export async function startUpstream(children: Children, script: string): Promise<Upstream> {
  const proc = children.spawn("upstream", process.execPath, [script, "0"]);
  const m = await waitForMatch(proc.child.stdout!, /upstream listening 127\.0\.0\.1:(\d+)/, 10_000, "upstream");
  const port = Number(m[1]);
  return { proc, port, base: `http://${LOOPBACK}:${port}` };
}

/** A self-signed ECDSA certificate for 127.0.0.1 on the given curve; returns [cert, key] paths. */
export function makeCertificate(openssl: string, dir: string, keyType: KeyType): { cert: string; key: string } {
  const tag = keyType.replace("-", "").toLowerCase();
  const cert = join(dir, `${tag}.crt`);
  const key = join(dir, `${tag}.key`);
  const r = runSync(
    openssl,
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      `ec_paramgen_curve:${keyType}`,
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    30_000,
  );
  if (r.code !== 0) throw new Error(`openssl req (${keyType}) failed: ${r.error ?? r.stderr.trim()}`);
  return { cert, key };
}

export interface Nginx {
  proc: Tracked;
  /** The worker (one): the process that does the TLS and proxying work. */
  workerPid: number;
  ports: Record<KeyType, number>;
  version: string;
  conf: string;
}

export function nginxVersion(nginx: string): string {
  const r = runSync(nginx, ["-v"], 10_000);
  return /nginx\/(\S+)/.exec(r.stderr + r.stdout)?.[1] ?? "unknown";
}

function nginxConf(dir: string, upstreamPort: number, servers: { port: number; cert: string; key: string }[]): string {
  const q = (p: string): string => JSON.stringify(p);
  // Run as root, nginx would drop its worker to "nobody", which cannot use our 0700 temp dir.
  const user = process.getuid?.() === 0 ? `user ${userInfo().username};\n` : "";
  const server = (s: { port: number; cert: string; key: string }): string => `
  server {
    listen ${LOOPBACK}:${s.port} ssl;
    ssl_certificate ${q(s.cert)};
    ssl_certificate_key ${q(s.key)};
    ssl_protocols TLSv1.3;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_max_temp_file_size 0;
    }
    location /sse {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_buffering off;
      proxy_read_timeout 1h;
    }
  }`;
  return `# written by scripts/bench/targets.ts for one benchmark run
${user}worker_processes 1;
error_log ${q(join(dir, "error.log"))} warn;
pid ${q(join(dir, "nginx.pid"))};
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${q(join(dir, "client_body"))};
  proxy_temp_path ${q(join(dir, "proxy"))};
  fastcgi_temp_path ${q(join(dir, "fastcgi"))};
  uwsgi_temp_path ${q(join(dir, "uwsgi"))};
  scgi_temp_path ${q(join(dir, "scgi"))};
  upstream bench_upstream {
    server ${LOOPBACK}:${upstreamPort};
    keepalive 64;
    keepalive_requests 1000000;
  }${servers.map(server).join("")}
}
`;
}

export async function startNginx(children: Children, nginx: string, dir: string, upstreamPort: number, certs: Record<KeyType, { cert: string; key: string }>): Promise<Nginx> {
  mkdirSync(dir, { recursive: true });
  let lastError: Error | null = null;
  // A port chosen free may be taken before nginx binds it: try again with new ones (bounded).
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports: Record<KeyType, number> = { "P-384": await freePort(), "P-256": await freePort() };
    if (ports["P-384"] === ports["P-256"]) continue;
    const conf = join(dir, "nginx.conf");
    writeFileSync(
      conf,
      nginxConf(
        dir,
        upstreamPort,
        (["P-384", "P-256"] as const).map((k) => ({ port: ports[k], ...certs[k] })),
      ),
    );
    const test = runSync(nginx, ["-t", "-p", dir, "-e", join(dir, "error.log"), "-c", conf, "-g", "daemon off;"], 15_000);
    if (test.code !== 0) throw new Error(`nginx -t refused the generated config: ${test.stderr.trim()}`);
    const proc = children.spawn("nginx", nginx, ["-p", dir, "-e", join(dir, "error.log"), "-c", conf, "-g", "daemon off;"]);
    let alive = true;
    void proc.exited.then(() => (alive = false));
    try {
      await waitForPort(ports["P-384"], 10_000, () => alive);
      await waitForPort(ports["P-256"], 10_000, () => alive);
      let workers: number[] = [];
      for (let i = 0; i < 40 && workers.length === 0; i++) {
        workers = childPids(proc.pid);
        if (workers.length === 0) await sleep(50);
      }
      if (workers.length !== 1) throw new Error(`expected one nginx worker, found ${workers.length}`);
      return { proc, workerPid: workers[0]!, ports, version: nginxVersion(nginx), conf };
    } catch (e) {
      lastError = new Error(`nginx did not start: ${(e as Error).message}; ${proc.output().trim().slice(-1000)}`);
      await children.stop(proc);
    }
  }
  throw lastError ?? new Error("nginx did not start");
}

export interface Serve {
  proc: Tracked;
  port: number;
  keyType: KeyType;
  base: string;
}

/** `node <build>/proxy/cli/main.js serve --config <file>` with a config validated here by loadConfig first. */
export async function startServe(children: Children, cli: string, dir: string, upstreamPort: number, keyType: KeyType, workers = 1): Promise<Serve> {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `serve-${keyType}-w${workers}.yaml`);
  writeFileSync(
    file,
    [
      "# written by scripts/bench/targets.ts for one benchmark run",
      `listen: "${LOOPBACK}:0"`,
      "attestation:",
      "  provider: dev",
      `  dev: { dir: ${JSON.stringify(join(dir, "dev"))} }`,
      `certificate: { keyType: ${keyType}, lifetime: 24h }`,
      "upstream:",
      `  url: "http://${LOOPBACK}:${upstreamPort}"`,
      "metrics: { listen: null }",
      "log: { level: silent }",
      // Every benchmark client is 127.0.0.1: the default share (half the cap) would refuse the
      // memory phase's streams past 750.
      "limits: { maxConnectionsPerClient: 1500 }",
      "shutdown: { drain: 1s }",
      `workers: ${workers}`,
      "",
    ].join("\n"),
  );
  // Fails here, with the key and the file named, rather than as a child's exit code.
  await loadConfig({ file, env: {} });
  // Only our config: no ATTESTABLE_MCP_* from the caller's environment.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ATTESTABLE_MCP_")));
  const proc = children.spawn(`serve ${keyType}`, process.execPath, [cli, "serve", "--config", file], { env });
  try {
    const m = await waitForMatch(proc.child.stderr!, /serving https:\/\/127\.0\.0\.1:(\d+)/, 60_000, `serve ${keyType}`);
    const port = Number(m[1]);
    return { proc, port, keyType, base: `https://${LOOPBACK}:${port}` };
  } catch (e) {
    await children.stop(proc);
    throw e;
  }
}
