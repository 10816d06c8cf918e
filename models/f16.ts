// Conversions between float32 arrays and the 16-bit encodings found in checkpoints.
// IEEE 754 binary16 (f16) rounding and decoding come from @petamoriken/float16, a small,
// dependency-free and widely used implementation (Node 20 has no Float16Array of its own).
// Its per-value DataView accessors cost about a microsecond each, too slow for checkpoints
// of millions of weights, so decoding goes through a 65536-entry table filled once by the
// library, and encoding through its Float16Array constructor's bulk conversion.
// bfloat16 needs no library: it is the upper half of a float32's bit pattern, so decoding
// is a 16-bit shift.
import { Float16Array, getFloat16 } from '@petamoriken/float16';

export type FloatDtype = 'f32' | 'f16' | 'bf16';

export const BYTES_PER_ELEMENT: Record<FloatDtype, number> = { f32: 4, f16: 2, bf16: 2 };

/** Decodes `count` little-endian values of `dtype` starting at `bytes[0]` into float32. */
export function decodeFloats(bytes: Uint8Array, dtype: FloatDtype, count: number): Float32Array {
  if (bytes.byteLength < count * BYTES_PER_ELEMENT[dtype]) {
    throw new Error(`need ${count * BYTES_PER_ELEMENT[dtype]} bytes of ${dtype}, got ${bytes.byteLength}`);
  }
  const out = new Float32Array(count);
  if (dtype === 'f32') {
    new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
    return out;
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * 2);
  if (dtype === 'f16') {
    const table = f16Table();
    if (bytes.byteOffset % 2 === 0) {
      const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, count);
      for (let i = 0; i < count; i++) out[i] = table[bits[i]!]!;
    } else {
      for (let i = 0; i < count; i++) out[i] = table[view.getUint16(i * 2, true)]!;
    }
    return out;
  }
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < count; i++) bits[i] = view.getUint16(i * 2, true) << 16;
  return out;
}

let table: Float32Array | undefined;

/** float32 value of every f16 bit pattern. */
function f16Table(): Float32Array {
  if (!table) {
    table = new Float32Array(65536);
    const view = new DataView(new ArrayBuffer(2));
    for (let bits = 0; bits < 65536; bits++) {
      view.setUint16(0, bits, true);
      table[bits] = getFloat16(view, 0, true);
    }
  }
  return table;
}

/** Encodes float32 values as little-endian `dtype` bytes (f16 rounds to nearest even). */
export function encodeFloats(values: Float32Array, dtype: 'f32' | 'f16'): Uint8Array {
  if (dtype === 'f32') return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  // Float16Array stores host-order (little-endian here, checked by the readers) 16-bit patterns.
  const half = new Float16Array(values);
  return new Uint8Array(half.buffer, half.byteOffset, half.byteLength);
}
