// A byte relay the API tier runs inside a network namespace: it listens on a Unix socket or host:port and
// forwards each connection to host:port. Unix sockets live in the file system, so they cross network
// namespaces: the test process (root namespace) reaches the API server and the agents' loopback endpoints
// through them without any link into the root namespace.
//   node relay.js LISTEN TARGET        LISTEN = unix:/path | host:port, TARGET = host:port
// SIGUSR1 freezes every connection open now (nothing more is forwarded either way, nothing is closed): a
// watch that stalls without closing. Connections accepted later are forwarded normally. Prints "ready".
import { connect, createServer, type Socket } from 'node:net';
import { unlinkSync } from 'node:fs';

const [listen, target] = process.argv.slice(2);
if (listen === undefined || target === undefined) {
  process.stderr.write('usage: relay.js unix:/path|host:port host:port\n');
  process.exit(2);
}
const colon = target.lastIndexOf(':');
const targetHost = target.slice(0, colon).replace(/^\[|\]$/g, '');
const targetPort = Number(target.slice(colon + 1));
const open = new Set<{ client: Socket; upstream: Socket }>();
let bytesUp = 0;
let bytesDown = 0;

const server = createServer((client) => {
  const upstream = connect({ host: targetHost, port: targetPort });
  const pair = { client, upstream };
  open.add(pair);
  const close = (): void => {
    open.delete(pair);
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
  client.on('data', (d: Buffer) => (bytesUp += d.length));
  upstream.on('data', (d: Buffer) => (bytesDown += d.length));
  client.pipe(upstream);
  upstream.pipe(client);
});
process.on('SIGUSR2', () => process.stdout.write(`bytes ${bytesUp} ${bytesDown}\n`));

process.on('SIGUSR1', () => {
  for (const { client, upstream } of open) {
    client.unpipe(upstream);
    upstream.unpipe(client);
    client.pause();
    upstream.pause();
    // A frozen connection is never closed from here: the peers see a silent, open TCP connection.
    client.removeAllListeners('close').removeAllListeners('error').on('error', () => undefined);
    upstream.removeAllListeners('close').removeAllListeners('error').on('error', () => undefined);
  }
  open.clear();
  process.stdout.write('frozen\n');
});
process.on('SIGTERM', () => process.exit(0));

if (listen.startsWith('unix:')) {
  const path = listen.slice('unix:'.length);
  try {
    unlinkSync(path);
  } catch {
    // not there
  }
  server.listen(path, () => process.stdout.write('ready\n'));
  process.on('exit', () => {
    try {
      unlinkSync(path);
    } catch {
      // gone
    }
  });
} else {
  const c = listen.lastIndexOf(':');
  server.listen(Number(listen.slice(c + 1)), listen.slice(0, c), () => process.stdout.write('ready\n'));
}
