/**
 * Decoding a KV-event payload straight into a {@link KvBlockIndex}, as the subscriber does it.
 *
 * Array-form batches of plain events (the shape vLLM publishes) are decoded by
 * {@link decodeBatchFlat} into reused column buffers and applied with the index's raw-field
 * methods ({@link KvBlockIndex.applyStoredRaw}, {@link KvBlockIndex.applyRemovedRaw}): no event
 * object is built. Any other payload (map batches or events, unknown tags, unusual field types,
 * malformed input) goes through {@link decodeBatch} and {@link KvBlockIndex.apply}, with the
 * same results. Either way the whole payload is decoded before anything is applied, so a
 * malformed payload changes nothing.
 */
import type { DropReason, KvBlockIndex } from "../precise/index.js";
import { decodeBatch, decodeBatchFlat, FLAT_REMOVED, FLAT_STORED, FlatBatch } from "./codec.js";

/** Applies payloads of KV-event batches to an index (see module doc). Not re-entrant. */
export class BatchIngester {
  private readonly flat = new FlatBatch();
  /** `ts` of the last batch ingested (seconds since the epoch) */
  ts = 0;
  /** events of the last batch ingested (events with unknown tags not counted) */
  events = 0;

  constructor(readonly index: KvBlockIndex) {}

  /**
   * Decodes `payload` and applies its events for endpoint slot `ep` whose topic names `model`.
   * Sets {@link ts} and {@link events}.
   * @param drops incremented per event (or part of one) the index dropped, by reason
   * @param models LoRA names of `BlockStored` events not in it yet are appended
   * @throws KvEventDecodeError on a malformed payload (nothing applied)
   */
  ingest(
    ep: number,
    model: string,
    payload: Uint8Array,
    drops: Record<DropReason, number>,
    models: string[],
  ): void {
    const idx = this.index;
    const f = this.flat;
    if (!decodeBatchFlat(payload, f)) {
      const { batch } = decodeBatch(payload);
      for (const ev of batch.events) {
        if (ev.type === "BlockStored" && ev.loraName !== null && !models.includes(ev.loraName)) {
          models.push(ev.loraName);
        }
        const r = idx.apply(ep, model, ev);
        if (r !== null) drops[r]++;
      }
      this.ts = batch.ts;
      this.events = batch.events.length;
      return;
    }
    const n = f.n;
    for (let i = 0; i < n; i++) {
      const kind = f.kind[i]!;
      let r: DropReason | null;
      if (kind === FLAT_STORED) {
        const lora = f.loraName[i]!;
        if (lora !== null && !models.includes(lora)) models.push(lora);
        r = idx.applyStoredRaw(
          ep,
          model,
          f.hashes,
          f.hashFrom[i]!,
          f.hashCount[i]!,
          f.hasParent[i] === 1,
          f.parentHi[i]!,
          f.parentLo[i]!,
          f.tokens,
          f.tokenFrom[i]!,
          f.tokenCount[i]!,
          f.blockSize[i]!,
          f.medium[i]!,
          lora,
        );
      } else if (kind === FLAT_REMOVED) {
        r = idx.applyRemovedRaw(ep, f.hashes, f.hashFrom[i]!, f.hashCount[i]!, f.medium[i]!);
      } else {
        idx.clearEndpoint(ep);
        r = null;
      }
      if (r !== null) drops[r]++;
    }
    this.ts = f.ts;
    this.events = n;
  }
}
