// Guest memory the host writes into. Results of host calls come back through "return pointer"
// slots: the host allocates a block by calling this module's `proxy_on_memory_allocate` and
// writes (pointer, size) into two u32 slots we pass it; we copy the block into a managed
// ArrayBuffer and free it (proxy-wasm-cpp-host WasmBase::copyToPointerSize). A zero size comes
// back as pointer 0 and nothing to free.

/** Two u32 return slots, reused by every host call (calls never nest across a callback). */
export const returnSlots: usize = heap.alloc(8);

export function returnPointer(): usize {
  return load<u32>(returnSlots);
}

export function returnSize(): usize {
  return load<u32>(returnSlots, 4);
}

/** Clears both slots before a call, so a host that writes nothing reads as "empty". */
export function clearReturnSlots(): void {
  store<u64>(returnSlots, 0);
}

/** Copies the block the host returned into a managed buffer and releases the block. */
export function takeReturnedBytes(): ArrayBuffer {
  const ptr = returnPointer();
  const size = returnSize();
  const out = new ArrayBuffer(<i32>size);
  if (ptr != 0) {
    if (size != 0) memory.copy(changetype<usize>(out), ptr, size);
    heap.free(ptr);
  }
  return out;
}

/** `proxy_on_memory_allocate`: a raw block outside the GC, freed by takeReturnedBytes. */
export function allocateForHost(size: usize): usize {
  return heap.alloc(size);
}
