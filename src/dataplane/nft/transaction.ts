// A batch of operations on the agent's table, applied atomically by a backend.
//
// knftables style: the verb methods return nothing. Each one validates its
// object; the first failure is kept in `error` and every later operation is
// ignored, so callers write straight-line code and check once, when a backend
// runs the transaction (run() throws the pending error before sending
// anything). toString() is the exact batch the kernel backend sends, with a
// trailing `# ERROR: ...` line when there is a pending error; it feeds /rules,
// logs and golden tests.

import { NftValidationError, type OpSummary } from './errors';
import { renderOperation, summarize, validateName, validateObject, type NftObject, type Verb } from './objects';

export interface Operation {
  readonly index: number;
  readonly verb: Verb;
  /** Validated, frozen, canonical copy of what was passed in. */
  readonly object: NftObject;
  /** The nft command line(s) for this operation (two for destroy). */
  readonly lines: readonly string[];
  readonly summary: OpSummary;
}

export class Transaction {
  /** Name of the inet table every operation applies to. */
  readonly table: string;
  readonly #ops: Operation[] = [];
  #error: NftValidationError | null = null;

  constructor(table: string) {
    this.table = table;
    try {
      validateName(table, 'table');
    } catch (err) {
      if (!(err instanceof NftValidationError)) throw err;
      this.#error = err;
    }
  }

  /** Creates the object if missing; a no-op for an identical existing one. Rules are appended (after `handle` if given). */
  add(obj: NftObject): void {
    this.#operation('add', obj);
  }

  /** Like add, but fails with EEXIST if the object exists. */
  create(obj: NftObject): void {
    this.#operation('create', obj);
  }

  /** Rules only: prepends (before `handle` if given). */
  insert(obj: NftObject): void {
    this.#operation('insert', obj);
  }

  /** Rules only: replaces the rule with `handle` (the handle is kept). */
  replace(obj: NftObject): void {
    this.#operation('replace', obj);
  }

  /** Removes the rules of a table (sets keep their elements) or chain, or the elements of a set/map. */
  flush(obj: NftObject): void {
    this.#operation('flush', obj);
  }

  /** Deletes the object; ENOENT if missing, EBUSY if referenced. */
  delete(obj: NftObject): void {
    this.#operation('delete', obj);
  }

  /** Deletes the object if it exists (rendered as add + delete: see renderOperation). */
  destroy(obj: NftObject): void {
    this.#operation('destroy', obj);
  }

  /** The first validation error, if any. */
  get error(): NftValidationError | null {
    return this.#error;
  }

  get operations(): readonly Operation[] {
    return this.#ops;
  }

  get size(): number {
    return this.#ops.length;
  }

  /**
   * The batch text. With a pending error, the operations before it followed by
   * `# ERROR: <message>` (a comment, so the text stays valid nft input).
   */
  toString(): string {
    const lines: string[] = [];
    for (const op of this.#ops) lines.push(...op.lines);
    if (this.#error !== null) lines.push(`# ERROR: ${this.#error.message.replace(/[\r\n]+/g, ' ')}`);
    return lines.length === 0 ? '' : lines.join('\n') + '\n';
  }

  /** For each batch line (0-based), the index of the operation it belongs to. */
  lineOwners(): number[] {
    const owners: number[] = [];
    for (const op of this.#ops) for (let i = 0; i < op.lines.length; i++) owners.push(op.index);
    return owners;
  }

  #operation(verb: Verb, obj: NftObject): void {
    if (this.#error !== null) return;
    const index = this.#ops.length;
    try {
      const object = validateObject(verb, obj);
      const summary = summarize(index, verb, object);
      this.#ops.push(Object.freeze({ index, verb, object, lines: Object.freeze(renderOperation(verb, object, this.table)), summary }));
    } catch (err) {
      if (!(err instanceof NftValidationError)) throw err;
      this.#error = err.withOp(summarize(index, verb, obj));
    }
  }
}
