// The child of ReaderProcess: one nftables context (in the network namespace given as its argument),
// answering listings asked over IPC until its parent goes away.
import { errorMessage } from '../../errors';
import { openNftContext } from './kernel-backend';
import type { ListFailure, ListReply, ListRequest } from './reader-process';

function failureOf(err: unknown): ListFailure {
  const fields = typeof err === 'object' && err !== null ? (err as Record<string, unknown>) : {};
  const text = (k: string): string | undefined => (typeof fields[k] === 'string' ? (fields[k] as string) : undefined);
  const errno = typeof fields['errno'] === 'number' ? fields['errno'] : undefined;
  const code = text('code');
  const nftMessage = text('nftMessage');
  const command = text('command');
  return { message: errorMessage(err), ...(code === undefined ? {} : { code }), ...(nftMessage === undefined ? {} : { nftMessage }), ...(command === undefined ? {} : { command }), ...(errno === undefined ? {} : { errno }) };
}

const ctx = openNftContext(process.argv[2]);
const reply = (r: ListReply): void => void process.send?.(r);
process.on('message', (m: ListRequest) => {
  ctx.list(m.command, { terse: m.terse }).then(
    (doc) => reply({ id: m.id, doc }),
    (err: unknown) => reply({ id: m.id, failure: failureOf(err) }),
  );
});
process.on('disconnect', () => {
  ctx.close();
  process.exit(0);
});
