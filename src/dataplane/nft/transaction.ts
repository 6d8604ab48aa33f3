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
import { renderBatch, renderOperation, summarize, validateName, validateObject, type BatchLine, type NftObject, type Verb } from './objects';

export interface Operation {
  readonly index: number;
  readonly verb: Verb;
  /** Validated, frozen, canonical copy of what was passed in. */
  readonly object: NftObject;
  /** The nft command line(s) for this operation alone (two for destroy); in the batch, element operations share lines. */
  readonly lines: readonly string[];
  readonly summary: OpSummary;
}

export class Transaction {
  /** Name of the inet table every operation applies to. */
  readonly table: string;
  readonly #ops: Operation[] = [];
  #error: NftValidationError | null = null;
  #batch: BatchLine[] | null = null;

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
    const lines = this.batchLines().map((l) => l.text);
    if (this.#error !== null) lines.push(`# ERROR: ${this.#error.message.replace(/[\r\n]+/g, ' ')}`);
    return lines.length === 0 ? '' : lines.join('\n') + '\n';
  }

  /** The batch as lines, with the operation behind each column range (see renderBatch). */
  batchLines(): readonly BatchLine[] {
    this.#batch ??= renderBatch(this.#ops, this.table);
    return this.#batch;
  }

  /**
   * Operation indexes in the order the batch applies them (element operations
   * are grouped per set: see renderBatch). The fake applies them in this order.
   */
  executionOrder(): number[] {
    const order: number[] = [];
    for (const line of this.batchLines()) {
      for (const seg of line.segments) if (order[order.length - 1] !== seg.op) order.push(seg.op);
    }
    return order;
  }

  /**
   * The operation at a position nft reported: `line` is 1-based; `column`
   * (1-based) picks the element in a shared element line, else the line's
   * first operation.
   */
  locate(line: number, column?: number): Operation | undefined {
    const l = this.batchLines()[line - 1];
    if (l === undefined) return undefined;
    const seg = (column === undefined ? undefined : l.segments.find((s) => s.from <= column && column <= s.to)) ?? l.segments[0];
    return seg === undefined ? undefined : this.#ops[seg.op];
  }

  #operation(verb: Verb, obj: NftObject): void {
    if (this.#error !== null) return;
    const index = this.#ops.length;
    try {
      const object = validateObject(verb, obj);
      const summary = summarize(index, verb, object);
      this.#ops.push(Object.freeze({ index, verb, object, lines: Object.freeze(renderOperation(verb, object, this.table)), summary }));
      this.#batch = null;
    } catch (err) {
      if (!(err instanceof NftValidationError)) throw err;
      this.#error = err.withOp(summarize(index, verb, obj));
    }
  }
}
