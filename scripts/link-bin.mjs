// npm links the bins of dependencies, never the package's own: link ours so that
// `node_modules/.bin/attestable-mcp` works in the repo root right after `npm ci`.
import { chmodSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const target = join(root, "dist/proxy/cli/main.js");
const link = join(root, "node_modules/.bin/attestable-mcp");
chmodSync(target, 0o755);
mkdirSync(dirname(link), { recursive: true });
rmSync(link, { force: true });
symlinkSync(relative(dirname(link), target), link);
