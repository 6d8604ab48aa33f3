// The helper process the sandbox runs in every pod (and node) namespace via `ip netns exec NS node THIS`.
// It serves the declared ports (TCP: one HTTP/1.0 answer naming the pod, then close; UDP: echo every
// datagram) and runs probes received as JSON lines on stdin, answering JSON lines on stdout. It exits
// when stdin closes, so it never outlives the process that started it.
import { readFileSync } from 'node:fs';
import { createServer, connect, isIP, type Server } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';
import type { HelperConfig, HelperMessage, HelperNotServing, HelperProbeCommand } from './helper-protocol';
import type { ProbeOutcome, SandboxPortSpec } from './types';

// What the TCP servers answer; probes recognise it to say which pod answered.
const ANSWER_RE = /netpol-sandbox (pod|node)=(\S+) port=(\d+)/;

interface Outcome {
  outcome: ProbeOutcome;
  detail: string;
}

const config = JSON.parse(process.argv[2] ?? '{}') as HelperConfig;
const [kind, ...rest] = config.label.split(' ');
const who = rest.join(' ');

function send(msg: HelperMessage): void {
  process.stdout.write(`${JSON.stringify(msg)}\n`);
}

function errCode(err: unknown): string {
  return typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
}
function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------------------------- serving

const servers: (Server | UdpSocket)[] = [];

function answerFor(port: number): string {
  const body = `netpol-sandbox ${kind === 'node' ? 'node' : 'pod'}=${who} port=${port}\n`;
  return `HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

function serveTcp(port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const answer = answerFor(port);
    const server = createServer((sock) => {
      sock.on('error', () => undefined);
      sock.setTimeout(5000, () => sock.destroy());
      sock.resume(); // read and drop the request (wget sends one) until the client closes
      sock.end(answer);
    });
    server.once('error', reject);
    server.listen({ port, host, ipv6Only: false }, () => {
      server.off('error', reject);
      server.on('error', () => undefined);
      servers.push(server);
      resolve();
    });
  });
}

function serveUdp(port: number, family: 'udp6' | 'udp4'): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createSocket({ type: family, ipv6Only: false });
    sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.once('error', reject);
    sock.bind({ port, address: family === 'udp6' ? '::' : '0.0.0.0' }, () => {
      sock.off('error', reject);
      sock.on('error', () => undefined);
      servers.push(sock);
      resolve();
    });
  });
}

/** Dual-stack first; IPv4 only if this namespace has no IPv6. */
async function serve(p: SandboxPortSpec): Promise<void> {
  try {
    await (p.protocol === 'TCP' ? serveTcp(p.port, '::') : serveUdp(p.port, 'udp6'));
  } catch (err) {
    if (errCode(err) !== 'EAFNOSUPPORT' && errCode(err) !== 'EADDRNOTAVAIL') throw err;
    await (p.protocol === 'TCP' ? serveTcp(p.port, '0.0.0.0') : serveUdp(p.port, 'udp4'));
  }
}

let sctpReason: string | null = null;
function sctpUnavailable(): string {
  if (sctpReason === null) {
    let kernelHasSctp = false;
    try {
      kernelHasSctp = /^SCTP/m.test(readFileSync('/proc/net/protocols', 'utf8'));
    } catch {
      // unreadable: say what we know
    }
    sctpReason = kernelHasSctp
      ? 'Node.js has no SCTP sockets, so the sandbox cannot serve or probe SCTP (the kernel does have SCTP)'
      : 'the kernel has no SCTP sockets (no SCTP in /proc/net/protocols), so SCTP cannot be served or probed';
  }
  return sctpReason;
}

// ---------------------------------------------------------------------------------------------- probing

function target(req: HelperProbeCommand): string {
  return isIP(req.toIp) === 6 ? `[${req.toIp}]:${req.port}` : `${req.toIp}:${req.port}`;
}

function answeredBy(text: string, protocol: string): string {
  const m = ANSWER_RE.exec(text);
  return m === null ? 'connected; the server sent no sandbox answer' : `connected; answered by ${m[1]} ${m[2]} on ${protocol} port ${m[3]}`;
}

function unreachable(err: unknown, req: HelperProbeCommand): Outcome {
  const code = errCode(err);
  const why =
    code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
      ? 'no route, no neighbour answer, or an ICMP unreachable (for example an nft reject) came back'
      : code === 'EPERM' || code === 'EACCES'
        ? 'the local kernel refused to send (a local firewall rule?)'
        : errText(err);
  return { outcome: 'error', detail: `${req.protocol} to ${target(req)}: ${code || 'error'}: ${why}` };
}

function probeTcp(req: HelperProbeCommand): Promise<Outcome> {
  return new Promise((resolve) => {
    let connected = false;
    let received = '';
    let done = false;
    const sock = connect({ host: req.toIp, port: req.port });
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve(o);
    };
    const timer = setTimeout(() => {
      finish(
        connected
          ? { outcome: 'connected', detail: `connected; no answer line within ${req.timeoutMs} ms` }
          : { outcome: 'timeout', detail: `no answer from ${target(req)} within ${req.timeoutMs} ms` },
      );
    }, req.timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      connected = true;
    });
    sock.on('data', (d: string) => {
      received += d;
      if (ANSWER_RE.test(received)) finish({ outcome: 'connected', detail: answeredBy(received, 'TCP') });
    });
    sock.on('close', () => {
      if (connected) finish({ outcome: 'connected', detail: answeredBy(received, 'TCP') });
    });
    sock.on('error', (err) => {
      if (connected) finish({ outcome: 'connected', detail: `${answeredBy(received, 'TCP')} (then ${errCode(err) || errText(err)})` });
      else if (errCode(err) === 'ECONNREFUSED') finish({ outcome: 'refused', detail: `connection to ${target(req)} refused (TCP reset): nothing listens there` });
      else finish(unreachable(err, req));
    });
  });
}

function probeUdp(req: HelperProbeCommand): Promise<Outcome> {
  return new Promise((resolve) => {
    const token = Buffer.from(`netpol-sandbox-probe ${req.id} ${randomBytes(6).toString('hex')}`);
    const sock = createSocket(isIP(req.toIp) === 6 ? 'udp6' : 'udp4');
    let done = false;
    let resend: NodeJS.Timeout | undefined;
    const finish = (o: Outcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearInterval(resend);
      sock.close();
      resolve(o);
    };
    const timer = setTimeout(
      () => finish({ outcome: 'timeout', detail: `no echo from ${target(req)} within ${req.timeoutMs} ms` }),
      req.timeoutMs,
    );
    sock.on('message', (msg) => {
      if (msg.equals(token)) finish({ outcome: 'connected', detail: `echo received from UDP ${target(req)}` });
    });
    sock.on('error', (err) => {
      if (errCode(err) === 'ECONNREFUSED') {
        finish({ outcome: 'refused', detail: `ICMP port unreachable from ${target(req)}: nothing listens on UDP port ${req.port}` });
      } else finish(unreachable(err, req));
    });
    const sendOnce = (): void => {
      if (!done) sock.send(token, (err) => err && finish(unreachable(err, req)));
    };
    sock.connect(req.port, req.toIp, () => {
      // UDP may be lost while neighbours resolve; resend a few times inside the deadline.
      sendOnce();
      resend = setInterval(sendOnce, Math.max(100, Math.floor(req.timeoutMs / 5)));
    });
  });
}

async function probe(req: HelperProbeCommand): Promise<Outcome> {
  if (isIP(req.toIp) === 0) return { outcome: 'error', detail: `${JSON.stringify(req.toIp)} is not an IP address` };
  switch (req.protocol) {
    case 'TCP':
      return probeTcp(req);
    case 'UDP':
      return probeUdp(req);
    case 'SCTP':
      return { outcome: 'skipped', detail: sctpUnavailable() };
    default:
      return { outcome: 'error', detail: `unknown protocol ${JSON.stringify(req.protocol)}` };
  }
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  const serving: string[] = [];
  const notServing: HelperNotServing[] = [];
  await Promise.all(
    config.ports.map(async (p) => {
      if (p.protocol === 'SCTP') {
        notServing.push({ ...p, reason: sctpUnavailable() });
        return;
      }
      try {
        await serve(p);
        serving.push(`${p.protocol}/${p.port}`);
      } catch (err) {
        notServing.push({ ...p, reason: errText(err) });
      }
    }),
  );
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    if (line.trim() === '') return;
    let req: HelperProbeCommand;
    try {
      req = JSON.parse(line) as HelperProbeCommand;
    } catch {
      return;
    }
    probe(req).then(
      (o) => send({ type: 'result', id: req.id, ...o }),
      (err: unknown) => send({ type: 'result', id: req.id, outcome: 'error', detail: errText(err) }),
    );
  });
  lines.on('close', () => process.exit(0));
  send({ type: 'ready', serving, notServing });
}

process.on('SIGTERM', () => process.exit(0));
main().catch((err: unknown) => {
  process.stderr.write(`${config.label}: helper failed: ${errText(err)}\n`);
  process.exit(1);
});
