// A batch of operations on the agent's table, applied atomically by a backend.
//
// The verb methods return nothing. Each one validates its object; the first failure is kept in
// `error` and every later operation is ignored, so callers write straight-line code and check once,
// when a backend runs the transaction (run() throws the pending error before sending anything).
// toString() is the exact batch the kernel backend sends, with a trailing `# ERROR: ...` line when
// there is a pending error.

import { NftValidationError, type OpSummary } from './errors';
import { renderBatch, renderOperation, summarize, validateName, validateObject, type BatchLine, type NftObject, type Verb } from './objects';

export interface Operation {
  readonly index: number;
  readonly verb: Verb;
  /** Validated, frozen, canonical copy of what was passed in. */
  readonly object: NftObject;
  /** The nft command line for this operation alone; in the batch, element operations share lines. */
  readonly line: string;
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

  /** Creates the object if missing; a no-op for an identical existing one. Rules are appended. */
  add(obj: NftObject): void {
    this.#operation('add', obj);
  }

  /** Removes the rules of a chain. */
  flush(obj: NftObject): void {
    this.#operation('flush', obj);
  }

  /** Deletes the object; ENOENT if missing, EBUSY if referenced. */
  delete(obj: NftObject): void {
    this.#operation('delete', obj);
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
      this.#ops.push(Object.freeze({ index, verb, object, line: renderOperation(verb, object, this.table), summary }));
      this.#batch = null;
    } catch (err) {
      if (!(err instanceof NftValidationError)) throw err;
      this.#error = err.withOp(summarize(index, verb, obj));
    }
  }
}
