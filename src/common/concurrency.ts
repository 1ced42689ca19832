// Bounded parallelism over a list, shared by the gateway (DeleteObjects), the CLI and the backup
// agent: a fixed number of workers take the next item as each finishes, so one slow item never
// holds up a whole batch, and results keep the items' order.

/** Run `work` over `items` with at most `limit` in flight; results in the items' order. */
export async function mapLimited<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(Math.max(1, limit), items.length) }, worker));
  return results;
}

/**
 * mapLimited, with each item's result a promise of its own: a caller can go on with the first
 * items while the rest are running.
 */
export function startLimited<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Array<Promise<R>> {
  const settlers: Array<{ resolve(result: R): void; reject(err: unknown): void }> = [];
  const results = items.map(() => new Promise<R>((resolve, reject) => { settlers.push({ resolve, reject }); }));
  void mapLimited(items, limit, (item, index) => work(item, index).then(settlers[index]!.resolve, settlers[index]!.reject));
  return results;
}
