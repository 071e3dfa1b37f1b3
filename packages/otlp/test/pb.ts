/** A tiny protobuf byte builder for hand-made (and deliberately malformed) test messages. */

export function varint(value: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

export function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export const tag = (field: number, wireType: number): Uint8Array => varint((field << 3) | wireType);

/** A length-delimited field holding the concatenated parts. */
export const ld = (field: number, ...parts: Uint8Array[]): Uint8Array => {
  const body = cat(...parts);
  return cat(tag(field, 2), varint(body.length), body);
};

export const str = (field: number, s: string): Uint8Array => ld(field, new TextEncoder().encode(s));
export const hexField = (field: number, hex: string): Uint8Array => ld(field, Buffer.from(hex, 'hex'));
export const vi = (field: number, v: number | bigint): Uint8Array => cat(tag(field, 0), varint(v));

export function f64(field: number, v: bigint): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt.asUintN(64, v));
  return cat(tag(field, 1), b);
}

export function f32(field: number, v: number): Uint8Array {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return cat(tag(field, 5), b);
}

export function dbl(field: number, v: number): Uint8Array {
  const b = Buffer.alloc(8);
  b.writeDoubleLE(v);
  return cat(tag(field, 1), b);
}

/** One unknown field of each skippable wire type (0, 1, 2, 5), numbered from `base`. */
export function unknownFields(base = 900): Uint8Array {
  return cat(
    vi(base, 2n ** 63n + 5n), // a ten-byte varint
    f64(base + 1, 0xdeadbeefn),
    ld(base + 2, vi(1, 1), str(2, 'nested unknown')),
    f32(base + 3, 0xcafe),
  );
}
