// Start-up check of the node's CNI shape. Routed pod interfaces (ptp, Calico-like) need nothing: every
// pod packet is routed through the inet forward hook. A node bridge (flannel, bridge CNI) switches
// same-node pod traffic at layer 2, which reaches the inet hooks only through br_netfilter with
// net.bridge.bridge-nf-call-iptables=1 (and -ip6tables=1 for IPv6); without it, policies would
// silently not apply between pods of one node.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** How to read a node's /proc and /sys: directly, or inside a named network namespace. */
export interface HostFiles {
  read(path: string): string | null;
  list(dir: string): string[];
}

export const localHostFiles: HostFiles = {
  read: (path) => {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return null; // absent: the module is not loaded, or the interface has no such attribute
    }
  },
  list: (dir) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  },
};

/** `ip netns exec` mounts the namespace's own /sys, so files read there describe that namespace. */
export function netnsHostFiles(netns: string): HostFiles {
  const inNetns = (script: string, arg: string): string | null => {
    try {
      return execFileSync('ip', ['netns', 'exec', netns, 'sh', '-c', script, 'sh', arg], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    } catch {
      return null;
    }
  };
  return {
    read: (path) => inNetns('cat "$1"', path),
    list: (dir) => (inNetns('ls -1 "$1"', dir) ?? '').split('\n').filter((l) => l !== ''),
  };
}

export interface CniShape {
  readonly shape: 'routed' | 'bridged';
  /** Bridges with at least one port (pod interfaces). */
  readonly bridges: readonly string[];
  /** null when the bridge netfilter sysctls do not exist (br_netfilter not loaded). */
  readonly bridgeNetfilter: { readonly ipv4: boolean; readonly ipv6: boolean } | null;
  /** What stops policies from applying on this node, and how to fix it; null when nothing does. */
  readonly problem: string | null;
}

const SYSCTL = '/proc/sys/net/bridge';

export function checkCniShape(files: HostFiles = localHostFiles): CniShape {
  const bridges = files.list('/sys/class/net').filter((dev) => files.list(`/sys/class/net/${dev}/brif`).length > 0).sort();
  const v4 = files.read(`${SYSCTL}/bridge-nf-call-iptables`);
  const v6 = files.read(`${SYSCTL}/bridge-nf-call-ip6tables`);
  const bridgeNetfilter = v4 === null || v6 === null ? null : { ipv4: v4.trim() === '1', ipv6: v6.trim() === '1' };
  if (bridges.length === 0) return { shape: 'routed', bridges, bridgeNetfilter, problem: null };
  const fix = 'run `modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1` on the node (and persist both in /etc/sysctl.d)';
  let problem: string | null = null;
  if (bridgeNetfilter === null) {
    problem = `pods are attached to bridge ${bridges.join(', ')} but br_netfilter is not loaded: traffic between pods of this node is switched at layer 2 and bypasses nftables, so no policy applies to it; ${fix}`;
  } else if (!bridgeNetfilter.ipv4 || !bridgeNetfilter.ipv6) {
    const off = [!bridgeNetfilter.ipv4 ? 'bridge-nf-call-iptables' : '', !bridgeNetfilter.ipv6 ? 'bridge-nf-call-ip6tables' : ''].filter((s) => s !== '').join(' and ');
    problem = `pods are attached to bridge ${bridges.join(', ')} but net.bridge.${off} is 0: bridged traffic between pods of this node bypasses nftables, so no policy applies to it; ${fix}`;
  }
  return { shape: 'bridged', bridges, bridgeNetfilter, problem };
}
