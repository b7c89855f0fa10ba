/**
 * Preload (`node --import …/local-address.js`) that makes every TCP connection of the process
 * start from AMCP_TEST_LOCAL_ADDRESS (127.0.0.2, 127.0.0.3, …: Linux answers the whole 127/8 on
 * loopback), so that real `verify` and `bridge` processes appear to a server as distinct clients.
 * Test-only: the commands have no such option, and need none.
 */
import net from "node:net";

const address = process.env.AMCP_TEST_LOCAL_ADDRESS;
if (address) {
  const connect = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]): net.Socket {
    const o = args[0] as Record<string, unknown> | null;
    if (o && typeof o === "object" && !Array.isArray(o) && o.port !== undefined && o.localAddress === undefined) args[0] = { ...o, localAddress: address };
    return connect.apply(this, args);
  } as typeof net.Socket.prototype.connect;
}
