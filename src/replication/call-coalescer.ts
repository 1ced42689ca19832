// Coalescing of small calls to one node. A gRPC call costs the gateway and the node each far
// more CPU than one more key in it (a 4 KiB PUT on a 6-node cluster was ~5 ms of CPU, most of it
// per-call HTTP/2 and framing), and the metadata RPCs already carry lists. So concurrent
// single-item calls (one key's metadata, one version's record) queue for the current turn of
// the event loop and leave together as one call; under load, while calls are in flight, the
// queue grows and the next call carries more. An idle gateway adds no delay beyond one turn.

/**
 * Calls one node may have in flight per coalescer before new items wait for the next batch,
 * unless the coalescer is given its own limit.
 */
const MAX_IN_FLIGHT = 2;
/** Items per call (inline shards of up to 128 KiB each stay well below gRPC's message limit). */
const MAX_BATCH = 64;

interface Queued<Item, Result> {
  item: Item;
  queuedAt: number;
  resolve(result: Result): void;
  reject(err: unknown): void;
}

export class CallCoalescer<Item, Result> {
  private queue: Array<Queued<Item, Result>> = [];
  private inFlight = 0;
  private scheduled = false;

  /**
   * `send` makes one call for its items and answers one result per item, in order; `waitedMs` is
   * how long the oldest of them queued, which the call's deadline should include. `isolate`
   * says whether a failed batch should be retried item by item: a refusal caused by one item
   * (say an invalid name) must not fail its neighbours, while a dead node fails them all anyway.
   * `maxInFlight` bounds the calls out at once: fewer calls in flight means fuller batches.
   */
  constructor(
    private readonly send: (items: Item[], waitedMs: number) => Promise<Result[]>,
    private readonly isolate: (err: unknown) => boolean,
    private readonly maxInFlight = MAX_IN_FLIGHT,
  ) {}

  call(item: Item): Promise<Result> {
    return new Promise<Result>((resolve, reject) => {
      this.queue.push({ item, queuedAt: Date.now(), resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight >= this.maxInFlight || this.queue.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.inFlight < this.maxInFlight) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight++;
      void this.deliver(batch).finally(() => {
        this.inFlight--;
        this.schedule();
      });
    }
  }

  private async deliver(batch: Array<Queued<Item, Result>>): Promise<void> {
    try {
      const results = await this.send(batch.map((q) => q.item), Date.now() - batch[0]!.queuedAt);
      batch.forEach((q, i) => q.resolve(results[i]!));
    } catch (err) {
      if (batch.length === 1 || !this.isolate(err)) {
        for (const q of batch) q.reject(err);
        return;
      }
      await Promise.all(batch.map((q) => this.send([q.item], Date.now() - q.queuedAt).then((results) => q.resolve(results[0]!), q.reject)));
    }
  }
}
