// The agent's health as levels, as Felix's health aggregator keeps it: each component (each kind the
// Kubernetes source reads, the datastore file, the dataplane, the CNI socket, the drop-log reader)
// reports its current level, ok or failing with a reason, and the registry keeps the last one with the
// time it began. /readyz, /healthz and the gauge netpol_agent_component_ready are computed from the
// levels when asked, so there is no edge to miss: a component that works again reports ok and is
// healthy again, whatever happened in between.
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

export interface ComponentLevel {
  readonly ok: boolean;
  /** What it does when ok, why it does not when failing. */
  readonly reason: string;
  /** When this level began (a repeated report keeps the time). */
  readonly since: Date;
}

export interface ComponentOptions {
  /** A failure lasting less than this does not make the agent not ready (retries take seconds). */
  readonly graceMs: number;
  /** Whether a failure makes the agent not ready; otherwise it is listed and exported, nothing more. */
  readonly readiness: boolean;
}

interface Component {
  readonly options: ComponentOptions;
  level: ComponentLevel;
}

/** Names of the components, as /readyz lists them and the gauge labels them. */
export const SOURCE_COMPONENT_PREFIX = 'source/';
export const DATAPLANE_COMPONENT = 'dataplane';
export const CNI_COMPONENT = 'cni';
export const DROP_LOG_COMPONENT = 'drop-log';

export class HealthRegistry {
  private readonly components = new Map<string, Component>();

  /** `metrics`: where the gauge netpol_agent_component_ready is registered (none without it). */
  constructor(metrics?: Registry, private readonly now: () => number = Date.now) {
    if (metrics === undefined) return;
    const levels = (): IterableIterator<[string, Component]> => this.components.entries();
    new Gauge({
      name: 'netpol_agent_component_ready',
      help: 'Each component of the agent: 1 when it works, 0 while it fails (the reason is in /readyz)',
      labelNames: ['component'],
      registers: [metrics],
      collect() {
        this.reset();
        for (const [name, c] of levels()) this.set({ component: name }, c.level.ok ? 1 : 0);
      },
    });
  }

  /** Records the current level of a component; the first report registers it with `options`. */
  report(name: string, options: ComponentOptions, ok: boolean, reason: string): void {
    const c = this.components.get(name);
    if (c === undefined) {
      this.components.set(name, { options, level: { ok, reason, since: new Date(this.now()) } });
      return;
    }
    c.level = { ok, reason, since: c.level.ok === ok ? c.level.since : new Date(this.now()) };
  }

  level(name: string): ComponentLevel | undefined {
    return this.components.get(name)?.level;
  }

  /** The components that hold the agent back: failing for their grace period or longer. */
  blocking(): { readonly name: string; readonly level: ComponentLevel }[] {
    const now = this.now();
    return [...this.components]
      .filter(([, c]) => c.options.readiness && !c.level.ok && now - c.level.since.getTime() >= c.options.graceMs)
      .map(([name, c]) => ({ name, level: c.level }));
  }

  ready(): boolean {
    return this.blocking().length === 0;
  }

  /** The earliest failure among components whose name starts with `prefix`, or null. */
  firstFailure(prefix: string): { readonly name: string; readonly level: ComponentLevel } | null {
    let first: { name: string; level: ComponentLevel } | null = null;
    for (const [name, c] of this.components) {
      if (!name.startsWith(prefix) || c.level.ok) continue;
      if (first === null || c.level.since < first.level.since) first = { name, level: c.level };
    }
    return first;
  }

  /**
   * /readyz's body: "ready" or "not ready: <what holds it back>", then one line per component, in the
   * order they first reported.
   */
  readyzText(): string {
    const blocking = this.blocking();
    const head = blocking.length === 0 ? 'ready' : `not ready: ${blocking.map((b) => `${b.name}: ${b.level.reason}`).join('; ')}`;
    const now = this.now();
    const lines = [...this.components].map(([name, c]) => {
      const since = c.level.since.toISOString();
      if (c.level.ok) return `${name} ok since ${since}: ${c.level.reason}`;
      const note = !c.options.readiness
        ? ' (does not affect readiness)'
        : now - c.level.since.getTime() < c.options.graceMs ? ` (within the ${c.options.graceMs / 1000} s grace period)` : '';
      return `${name} failing since ${since}${note}: ${c.level.reason}`;
    });
    return `${[head, ...lines].join('\n')}\n`;
  }
}
