/**
 * Checks every transport suite makes the same way against the test server: progress while a call
 * runs, and the 2026-07-28 change notifications (the client listens for tool-list changes and
 * `mcp2://hello`, calls `touch`, and both notifications arrive tagged with its subscription id).
 */
import assert from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/client";
import { waitFor, within } from "../wait.js";

export interface Notification {
  method: string;
  params?: Record<string, unknown>;
}

export type Subscription = Awaited<ReturnType<Client["listen"]>>;

const FILTER = { toolsListChanged: true, resourceSubscriptions: ["mcp2://hello"] };

/**
 * Listens, touches and waits for both notifications (each step within `ms`); the notifications,
 * the subscription id each carried, and the subscription, closed again.
 */
export async function notificationsAfterTouch(client: Client, ms: number): Promise<{ got: Notification[]; ids: string[]; sub: Subscription }> {
  const got: Notification[] = [];
  const ids: string[] = [];
  client.setNotificationHandler("notifications/tools/list_changed", (n) => void got.push(n as never));
  client.setNotificationHandler("notifications/resources/updated", (n) => void got.push(n as never));
  const sub = await within(client.listen(FILTER), ms, "listen ack");
  try {
    assert.deepEqual(sub.honoredFilter, FILTER);
    await within(client.callTool({ name: "touch", arguments: {} }), ms, "touch");
    await waitFor(() => got.some((n) => n.method === "notifications/tools/list_changed") && got.some((n) => n.method === "notifications/resources/updated"), ms, "list_changed and resources/updated");
    for (const n of got) {
      const sid = (n.params?._meta as Record<string, unknown> | undefined)?.["io.modelcontextprotocol/subscriptionId"];
      assert.equal(typeof sid, "string", `tagged with the client's subscription id: ${JSON.stringify(n)}`);
      ids.push(sid as string);
    }
  } finally {
    await within(sub.close(), ms, "subscription close");
  }
  return { got, ids, sub };
}

/** Calls `progress` with `steps` steps: the result, and the progress notifications before it, in order. */
export async function progressArrives(client: Client, steps: number, ms: number): Promise<void> {
  const progress: number[] = [];
  const r = (await within(client.callTool({ name: "progress", arguments: { steps, ms: 100 } }, { onprogress: (p) => progress.push(p.progress), timeout: ms }), ms, "progress call")) as {
    content: Array<{ text?: string }>;
  };
  const beforeResult = progress.length;
  assert.equal(r.content[0]?.text, `progress done: ${steps}`);
  // The server sends all `steps`; the SDK client dispatches notifications on a microtask but
  // settles responses synchronously, so a last notification read in the same chunk as the
  // response is dropped ("unknown token"). Hence steps - 1, not steps.
  assert.ok(beforeResult >= steps - 1, `progress before the result: ${beforeResult} of ${steps}`);
  assert.deepEqual(
    progress,
    progress.slice().sort((a, b) => a - b),
    "progress increases",
  );
  assert.equal(progress[0], 1);
}
