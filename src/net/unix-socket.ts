// A unix socket only root can open: the agent's debug endpoints listen on one (and the CNI socket may).
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import { dirname } from 'node:path';

/**
 * Listens on `path` with mode 0600, its directory created 0700 and a stale socket of a previous run
 * replaced. The socket is created under a umask that gives no access to others, so there is no moment
 * it is open to them.
 */
export function listenPrivateSocket(server: Server, path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const umask = process.umask(0o177);
    try {
      server.listen(path, () => {
        server.off('error', reject);
        chmodSync(path, 0o600);
        resolve();
      });
    } finally {
      process.umask(umask);
    }
  });
}
