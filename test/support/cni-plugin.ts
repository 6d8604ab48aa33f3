// The Go CNI plugin (cni-plugin/) built for the tests as the image builds it: static, from the vendored
// modules, with no network access. Go's build cache makes a second build within a run cost nothing.
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

export const CNI_PLUGIN_DIR = resolve(__dirname, '../../../cni-plugin');
export const CNI_PLUGIN = join(CNI_PLUGIN_DIR, 'build/netpol-agent-cni');

/** Builds cni-plugin/build/netpol-agent-cni (Go on the PATH, or in /usr/local/go/bin). */
export function buildCniPlugin(): string {
  execFileSync('go', ['build', '-mod=vendor', '-trimpath', '-ldflags=-s -w', '-o', CNI_PLUGIN, '.'], {
    cwd: CNI_PLUGIN_DIR,
    stdio: 'inherit',
    env: { ...process.env, CGO_ENABLED: '0', GOPROXY: 'off', GOFLAGS: '-buildvcs=false', PATH: `${process.env['PATH'] ?? ''}:/usr/local/go/bin` },
  });
  return CNI_PLUGIN;
}
