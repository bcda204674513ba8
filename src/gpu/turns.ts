// Instances that share a GPU start one after another: llama.cpp's fit sizes a
// load to the memory free at that moment, so two loads at once both see the
// whole GPU and the second fails (measured on an H200: cudaMalloc out of
// memory). An instance takes the turn of each GPU it uses before its spawn and
// gives it back once its buffers are allocated (or it stopped trying).

/** Who loads on which GPU now. */
export class GpuTurns {
  readonly #holders = new Map<number, string>();

  /** Takes the turn on every device for `instance` and returns null, or names who holds one of them (nothing taken). */
  take(instance: string, devices: readonly number[]): string | null {
    for (const device of devices) {
      const holder = this.#holders.get(device);
      if (holder !== undefined && holder !== instance) return `${holder} is loading on GPU ${device}`;
    }
    for (const device of devices) this.#holders.set(device, instance);
    return null;
  }

  /** Gives back every turn `instance` holds. */
  release(instance: string): void {
    for (const [device, holder] of this.#holders) if (holder === instance) this.#holders.delete(device);
  }

  /** The instance loading on a device, if any. */
  holderOf(device: number): string | null {
    return this.#holders.get(device) ?? null;
  }
}
