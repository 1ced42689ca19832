// Services of a storage node that a client in the same process may call directly (`tessera start`
// runs the gateway and its node in one process), found by the address the node listens on. Off
// unless the process turns it on, so tests that run nodes and clients in one process still go
// through the sockets.
export class SameProcessRegistry<T> {
  private enabled = false;
  private readonly byAddress = new Map<string, T>();

  /** Let nodes started from now on in this process register. */
  enable(): void {
    this.enabled = true;
  }

  /** Called by a node once it listens; returns the function that withdraws the registration. */
  register(address: string, service: T): () => void {
    if (!this.enabled) return () => {};
    this.byAddress.set(address, service);
    return () => {
      if (this.byAddress.get(address) === service) this.byAddress.delete(address);
    };
  }

  at(address: string): T | undefined {
    return this.byAddress.get(address);
  }
}
