// What a client may cost the agent's HTTP surfaces: connections past the cap are refused, a connection
// that sends nothing or stays idle is closed by the server, and /healthz answers throughout.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import pino from 'pino';
import { AgentMetrics, AgentServer, HealthRegistry } from '../../src/agent';

/** Resolves once the server has closed the socket (or the bound passes: a generous bound, not a speed). */
function closedByServer(socket: Socket, boundMs = 30_000): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), boundMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

test('the metrics surface: a connection past the cap is refused, silent and idle connections are closed, /healthz answers throughout', async () => {
  const metrics = new AgentMetrics({ processMetrics: false });
  const server = new AgentServer({
    surface: 'metrics',
    health: new HealthRegistry(metrics.registry),
    metrics,
    errors: metrics,
    logger: pino({ level: 'silent' }),
    limits: { headersTimeoutMs: 300, requestTimeoutMs: 500, idleTimeoutMs: 300, maxConnections: 2 },
  });
  const { port } = await server.listen('127.0.0.1', 0);
  const sockets: Socket[] = [];
  try {
    // Two silent connections fill the cap: a third is closed at once. Each one's close is watched from
    // its connection on, so that none is missed.
    const silent = [await open(port), await open(port)];
    const silentClosed = silent.map((s) => closedByServer(s));
    const third = await open(port);
    sockets.push(...silent, third);
    assert.equal(await closedByServer(third), true, 'past the cap: refused');
    // The silent ones are closed by the server (request timeout), which frees the cap.
    assert.deepEqual(await Promise.all(silentClosed), [true, true], 'a connection that sends nothing is closed');
    // A kept-alive connection left idle after its request (/healthz, answered) is closed too.
    const idle = await open(port);
    sockets.push(idle);
    let answer = '';
    idle.on('data', (d: Buffer) => { answer += d.toString(); });
    const closed = closedByServer(idle);
    idle.write('GET /healthz HTTP/1.1\r\nhost: agent\r\n\r\n');
    assert.equal(await closed, true, 'idle after a request: closed');
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\nok\n\r\n/);
  } finally {
    for (const s of sockets) s.destroy();
    await server.close();
  }
});
