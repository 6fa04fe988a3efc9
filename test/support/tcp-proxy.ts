import { createServer, Socket, type Server } from 'node:net';

/**
 * A loopback TCP proxy in front of a real Redis, for network faults the server itself cannot fake: `cut()`
 * drops every connection at once (as a NAT or load balancer might), and `blackhole` makes the proxy accept
 * connections and swallow their bytes without an answer, so a reconnect succeeds at TCP level and then hangs;
 * `rewriteReplies` alters what Redis answers; `delayMs` holds every reply that long (a slow network or server).
 */
export class TcpProxy {
  blackhole = false;
  /** Every chunk from Redis reaches the client this much later (order kept: equal timeouts fire in order). */
  delayMs = 0;
  /** When set, every chunk from Redis to the client passes through it (to fake a reply Redis gives only by chance). */
  rewriteReplies: ((chunk: Buffer) => Buffer) | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static start(targetPort: number): Promise<TcpProxy> {
    return new Promise((resolve, reject) => {
      let proxy: TcpProxy | undefined;
      const server = createServer((client) => {
        const p = proxy!;
        p.track(client);
        if (p.blackhole) {
          client.on('data', () => undefined);
          return;
        }
        const upstream = new Socket();
        p.track(upstream);
        upstream.connect(targetPort, '127.0.0.1');
        client.on('data', (chunk) => {
          if (!p.blackhole) upstream.write(chunk);
        });
        upstream.on('data', (chunk: Buffer) => {
          if (p.blackhole) return;
          const out = p.rewriteReplies ? p.rewriteReplies(chunk) : chunk;
          if (p.delayMs > 0) setTimeout(() => client.write(out), p.delayMs);
          else client.write(out);
        });
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => client.destroy());
      });
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const addr = server.address();
        proxy = new TcpProxy(server, typeof addr === 'object' && addr ? addr.port : 0);
        resolve(proxy);
      });
    });
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Destroys every open connection (both sides). */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async stop(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => this.sockets.delete(s));
  }
}
