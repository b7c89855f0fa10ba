/** The legacy HTTP+SSE endpoints (`GET /sse`, `POST /message`) with the real server as the child. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { alive, waitFor } from "../../../support/wait.js";
import { EVERYTHING, childPids, newClient, recordingHooks, scoped, startProxy, textOf } from "./harness.js";

test("legacy HTTP+SSE: initialize, tools/list, echo; the child ends with the stream", () =>
  scoped(async (defer) => {
    const hooks = recordingHooks();
    const p = await startProxy(defer, { hooks });
    const before = childPids(EVERYTHING);
    const client = newClient();
    defer(() => client.close());
    await client.connect(new SSEClientTransport(new URL(`${p.base}/sse`)));
    assert.equal(p.up.sessions(), 1);
    const pid = childPids(EVERYTHING).filter((x) => !before.includes(x))[0];
    assert.ok(pid !== undefined);
    const tools = await client.listTools();
    assert.ok(tools.tools.some((t) => t.name === "echo"));
    assert.match(textOf(await client.callTool({ name: "echo", arguments: { message: "over legacy sse" } })), /over legacy sse/);
    // The SDK client dispatches notifications a microtask late, so a progress notification that
    // arrives in the same chunk as the response can lose its handler: only the earlier ones are certain.
    const progress: number[] = [];
    await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 0.6, steps: 3 } }, undefined, {
      onprogress: (pr) => void progress.push(pr.progress),
    });
    assert.deepEqual(progress.slice(0, 2), [1, 2]);
    await client.close();
    await waitFor(() => p.up.sessions() === 0, 5_000, "the session to end with the stream");
    await waitFor(() => !alive(pid), 5_000, "the child to exit");
    assert.deepEqual(hooks.errors, []);
    await p.close();
    assert.equal(hooks.opened, hooks.closed);
  }));
