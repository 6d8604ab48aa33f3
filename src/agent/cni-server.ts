// The unix socket netpol-agent-cni talks to (--cni-socket): one JSON line in, one JSON line out.
//
//   {"op":"add","namespace":"ns","name":"pod","uid":"...","containerId":"...","ips":["10.244.0.5/24"],"timeoutMs":10000}
//   {"op":"del", ...same fields...}          {"op":"status"}
//   -> {"result":"ok","detail":"rules committed"} | {"result":"error","message":"pod ns/pod: ..."}
//
// The answer to an add comes before the plugin's own timeout (a tenth of it earlier), so the plugin
// reports the agent's reason rather than a bare timeout.
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../errors';
import type { CniAddRequest, CniAnswer, CniPodGate } from './cni-gate';
import { listenPrivateSocket } from './unix-socket';

export const DEFAULT_CNI_SOCKET = '/run/netpol-agent/cni.sock';
const MAX_REQUEST_BYTES = 65_536;
/** The plugin's default timeoutMs, when a request carries none. */
const DEFAULT_PLUGIN_TIMEOUT_MS = 10_000;

export interface CniServerOptions {
  readonly path: string;
  readonly gate: CniPodGate;
  /** Whether the agent has reconciled and its last transaction succeeded (STATUS). */
  readonly ready: () => boolean;
  /** The longest an add waits, whatever the plugin's timeout (default 30 s). */
  readonly maxWaitMs?: number;
  readonly logger: Logger;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
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

  constructor(private readonly options: CniServerOptions) {
    this.log = options.logger;
    this.server = createServer((socket) => this.serve(socket));
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
    let data = '';
    const onData = (chunk: Buffer): void => {
      data += chunk.toString('utf8');
      const nl = data.indexOf('\n');
      if (nl < 0) {
        if (data.length > MAX_REQUEST_BYTES) this.reply(socket, { result: 'error', message: `request longer than ${MAX_REQUEST_BYTES} bytes` });
        return;
      }
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
      return this.options.ready() ? { result: 'ok', detail: 'ready' } : { result: 'error', message: 'the agent has not reconciled the kernel table yet, or its last transaction failed' };
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
    const ms = Math.round((performance.now() - started) * 10) / 10;
    if (a.result === 'ok') this.log.info({ pod, containerId: fields.containerId, ips: fields.ips, ms, detail: a.detail }, `CNI ADD of pod ${pod}: ${a.detail}`);
    else this.log.warn({ pod, containerId: fields.containerId, ips: fields.ips, ms }, `CNI ADD refused: ${a.message}`);
    return a;
  }
}
