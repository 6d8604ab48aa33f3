// The Go CNI plugin (cni-plugin/) built for the tests as the image builds it: static, from the vendored
// modules, with no network access. Go's build cache makes a second build within a run cost nothing.
import { execFileSync, spawn } from 'node:child_process';
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

export interface PluginRun { readonly code: number | null; readonly stdout: string; readonly stderr: string }

/**
 * Runs the plugin as a runtime does: CNI_* variables in env, the configuration on stdin. Its stdout is
 * decoded strictly as UTF-8 (the spec's output is JSON): bytes that are not make the run fail.
 */
export function runCniPlugin(env: Record<string, string>, stdin: string | Buffer): Promise<PluginRun> {
  return new Promise((done, failed) => {
    const child = spawn(CNI_PLUGIN, [], { env });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => stdout.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', failed);
    child.on('close', (code) => {
      try {
        done({ code, stdout: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(stdout)), stderr });
      } catch (err) {
        failed(err);
      }
    });
    // The plugin may answer without reading stdin (VERSION never reads it; a missing variable is an
    // error before it): its exit closes the pipe under our write. Any other write error is a failure.
    child.stdin.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'EPIPE') failed(err);
    });
    child.stdin.end(stdin);
  });
}
