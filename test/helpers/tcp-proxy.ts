/**
 * A TCP proxy on 127.0.0.1 between an agent and the server, for network-fault tests: `drop()`
 * destroys every connection through it (both sides, no FIN handshake the application could see
 * coming), `pause()` stops listening so new connections are refused, `resume()` listens again on
 * the same port.
 */
import { once } from 'node:events';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  readonly #target: { host: string; port: number };
  readonly #sockets = new Set<Socket>();
  #server: Server | null = null;
  #port = 0;
  /** Connections accepted since start. */
  accepted = 0;

  constructor(targetPort: number, targetHost = '127.0.0.1') {
    this.#target = { host: targetHost, port: targetPort };
  }

  get port(): number {
    return this.#port;
  }

  /** Listens on 127.0.0.1 (`port` 0: a free one; the same port again after `pause`). */
  async listen(port = this.#port): Promise<number> {
    const server = createServer((client) => this.#onConnection(client));
    server.listen(port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
    this.#port = (server.address() as { port: number }).port;
    return this.#port;
  }

  #onConnection(client: Socket): void {
    this.accepted++;
    const upstream = createConnection(this.#target);
    for (const s of [client, upstream]) {
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => undefined);
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  /** Destroys every open connection (as a dropped network would, to both ends). */
  drop(): number {
    const n = this.#sockets.size;
    for (const s of this.#sockets) s.resetAndDestroy();
    return n;
  }

  /** Stops listening (new connections are refused) and drops the open ones. */
  async pause(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    this.drop();
    if (server) await new Promise((r) => server.close(r));
  }

  async resume(): Promise<void> {
    if (!this.#server) await this.listen(this.#port);
  }

  async close(): Promise<void> {
    await this.pause();
  }
}
