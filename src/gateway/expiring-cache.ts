// A read-through cache for records every request needs (buckets, access keys): entries expire
// after a while, so writes by other gateways are seen; requests that miss together share one load
// (without that, 32 requests in flight fanned out 32 record reads to every node each time the entry
// expired); a set() while a load is under way wins over the load's possibly older answer.
export class ExpiringCache<V> {
  private readonly entries = new Map<string, { value: V; expires: number }>();
  private readonly loading = new Map<string, Promise<V>>();

  constructor(private readonly ttlMs: number, private readonly load: (key: string) => Promise<V>, private readonly maxEntries = 10_000) {}

  get(key: string): Promise<V> {
    const entry = this.entries.get(key);
    if (entry && entry.expires > Date.now()) return Promise.resolve(entry.value);
    return this.loading.get(key) ?? this.startLoad(key);
  }

  set(key: string, value: V): void {
    this.loading.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.clear();
    this.entries.set(key, { value, expires: Date.now() + this.ttlMs });
  }

  private startLoad(key: string): Promise<V> {
    const loaded: Promise<V> = this.load(key).then((value) => {
      if (this.loading.get(key) === loaded) this.set(key, value);
      return value;
    }).finally(() => {
      if (this.loading.get(key) === loaded) this.loading.delete(key);
    });
    this.loading.set(key, loaded);
    return loaded;
  }
}
