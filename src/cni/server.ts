// The unix socket netpol-agent-cni (cni-plugin/) talks to (--cni-socket): one JSON line in, one JSON
// line out.
//
//   {"op":"add","namespace":"ns","name":"pod","uid":"...","containerId":"...","ips":["10.244.0.5/24"],"timeoutMs":10000}
//   {"op":"del", ...same fields...}          {"op":"status"}
//   -> {"result":"ok","detail":"rules committed"} | {"result":"error","message":"pod ns/pod: ..."}
//
// The answer to an add comes before the plugin's own timeout (a tenth of it earlier), so the plugin
// reports the agent's reason rather than a bare timeout. A connection that has not sent its whole line
// within the read deadline is closed: a stuck or half-dead client holds no socket for ever.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { errorMessage } from '../errors';
import { isRecord } from '../json';
import type { CniAddRequest, CniAnswer, CniPodGate } from './gate';
import { listenPrivateSocket } from '../net/unix-socket';

export const DEFAULT_CNI_SOCKET = '/run/netpol-agent/cni.sock';
const MAX_REQUEST_BYTES = 65_536;
/** The plugin's default timeoutMs, when a request carries none. */
const DEFAULT_PLUGIN_TIMEOUT_MS = 10_000;
/** The plugin writes its request line at once after connecting; a few seconds is plenty on a loaded node. */
const DEFAULT_READ_DEADLINE_MS = 5_000;
/** ADD answers: a few milliseconds for pods no policy selects, up to the plugin's timeout (10 s by default). */
const ADD_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export interface CniServerOptions {
  readonly path: string;
  readonly gate: CniPodGate;
  /** Whether the agent can program a new pod now (STATUS of the plugin). */
  readonly ready: () => boolean;
  /** The longest an add waits, whatever the plugin's timeout (default 30 s). */
  readonly maxWaitMs?: number;
  /** How long a connection may take to send its request line (default 5 s). */
  readonly readDeadlineMs?: number;
  /** Where the ADD-latency histogram netpol_agent_cni_add_duration_seconds is registered. */
  readonly registry: Registry;
  readonly logger: Logger;
}

function stringField(req: Record<string, unknown>, field: string, required: boolean): string {
  const v = req[field];
  if (v === undefined && !required) return '';
  if (typeof v !== 'string' || (required && v === '')) throw new Error(`"${field}" must be a${required ? ' non-empty' : ''} string`);
  return v;
}

function ipsField(req: Record<string, unknown>): string[] {
  const v = req['ips'];
  if (v === undefined) return [];
  if (!Array.isArray(v) || !v.every((x): x is string => typeof x === 'string')) throw new Error('"ips" must be a list of strings');
  return v;
}

export class CniServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly log: Logger;
  private readonly addDuration: Histogram<'result'>;

  constructor(private readonly options: CniServerOptions) {
    this.log = options.logger;
    this.server = createServer((socket) => this.serve(socket));
    this.addDuration = new Histogram({
      name: 'netpol_agent_cni_add_duration_seconds',
      help: 'CNI ADD requests of the plugin, from the request read to the answer (result ok: the pod\'s rules are committed, or no policy selects it)',
      labelNames: ['result'],
      buckets: ADD_DURATION_BUCKETS,
      registers: [options.registry],
    });
  }

  /** Listens on the path (its directory created, a stale socket of a previous run replaced), mode 0600. */
  listen(): Promise<void> {
    return listenPrivateSocket(this.server, this.options.path);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private serve(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    const deadlineMs = this.options.readDeadlineMs ?? DEFAULT_READ_DEADLINE_MS;
    const deadline = setTimeout(() => {
      this.log.warn(`CNI socket: a connection sent no complete request within ${deadlineMs} ms; closed`);
      socket.destroy();
    }, deadlineMs);
    socket.on('close', () => clearTimeout(deadline));
    let data = '';
    const onData = (chunk: Buffer): void => {
      data += chunk.toString('utf8');
      const nl = data.indexOf('\n');
      if (nl < 0) {
        if (data.length > MAX_REQUEST_BYTES) this.reply(socket, { result: 'error', message: `request longer than ${MAX_REQUEST_BYTES} bytes` });
        return;
      }
      clearTimeout(deadline);
      socket.off('data', onData);
      const line = data.slice(0, nl);
      this.answer(line).then(
        (a) => this.reply(socket, a),
        (err: unknown) => {
          this.log.error({ err }, `CNI request failed: ${errorMessage(err)}`);
          this.reply(socket, { result: 'error', message: `internal error: ${errorMessage(err)}` });
        },
      );
    };
    socket.on('data', onData);
  }

  private reply(socket: Socket, answer: CniAnswer): void {
    if (!socket.destroyed) socket.end(`${JSON.stringify(answer)}\n`);
  }

  private async answer(line: string): Promise<CniAnswer> {
    let req: Record<string, unknown>;
    let op: string;
    try {
      const parsed: unknown = JSON.parse(line);
      if (!isRecord(parsed)) throw new Error('not a JSON object');
      req = parsed;
      op = stringField(req, 'op', true);
    } catch (err) {
      return { result: 'error', message: `bad request: ${errorMessage(err)}` };
    }
    if (op === 'status') {
      return this.options.ready() ? { result: 'ok', detail: 'ready' } : { result: 'error', message: 'the agent cannot program a new pod now (its /readyz says why)' };
    }
    if (op !== 'add' && op !== 'del') return { result: 'error', message: `bad request: unknown op ${JSON.stringify(op)}` };
    let fields: CniAddRequest;
    try {
      fields = { namespace: stringField(req, 'namespace', true), name: stringField(req, 'name', true), uid: stringField(req, 'uid', false), containerId: stringField(req, 'containerId', false), ips: ipsField(req) };
    } catch (err) {
      return { result: 'error', message: `bad ${op} request: ${errorMessage(err)}` };
    }
    const pod = `${fields.namespace}/${fields.name}`;
    if (op === 'del') {
      const a = this.options.gate.del(fields);
      this.log.info({ pod, containerId: fields.containerId, ips: fields.ips, detail: a.result === 'ok' ? a.detail : a.message }, `CNI DEL of pod ${pod}`);
      return a;
    }
    const timeout = typeof req['timeoutMs'] === 'number' && req['timeoutMs'] > 0 ? req['timeoutMs'] : DEFAULT_PLUGIN_TIMEOUT_MS;
    const waitMs = Math.min(this.options.maxWaitMs ?? 30_000, Math.floor(timeout * 0.9));
    const started = performance.now();
    const a = await this.options.gate.add(fields, waitMs);
    const seconds = (performance.now() - started) / 1000;
    this.addDuration.observe({ result: a.result }, seconds);
    const ms = Math.round(seconds * 10_000) / 10;
    if (a.result === 'ok') this.log.info({ pod, containerId: fields.containerId, ips: fields.ips, ms, detail: a.detail }, `CNI ADD of pod ${pod}: ${a.detail}`);
    else this.log.warn({ pod, containerId: fields.containerId, ips: fields.ips, ms }, `CNI ADD refused: ${a.message}`);
    return a;
  }
}
