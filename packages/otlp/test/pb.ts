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

/**
 * An AnyValue's bytes holding `levels` nested array_values (or kvlist_values, each with one member
 * keyed "k") around the AnyValue `inner`: `levels` = 1 is an array holding `inner`. Built back to
 * front in one buffer, so 100,000 levels cost milliseconds rather than quadratic copying.
 */
export function nestedAnyValue(levels: number, kind: 'array' | 'kvlist', inner: Uint8Array): Uint8Array {
  const buf = Buffer.alloc(inner.length + levels * 24);
  let start = buf.length - inner.length;
  buf.set(inner, start);
  const end = buf.length;
  const prepend = (bytes: number[]) => {
    start -= bytes.length;
    for (let i = 0; i < bytes.length; i++) buf[start + i] = bytes[i]!;
  };
  const lenBytes = (n: number): number[] => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n >>>= 7;
    }
    out.push(n);
    return out;
  };
  for (let i = 0; i < levels; i++) {
    if (kind === 'array') {
      prepend([0x0a, ...lenBytes(end - start)]); // ArrayValue.values = 1
      prepend([0x2a, ...lenBytes(end - start)]); // AnyValue.array_value = 5
    } else {
      prepend([0x12, ...lenBytes(end - start)]); // KeyValue.value = 2
      prepend([0x0a, 0x01, 0x6b]); // KeyValue.key = 1: "k"
      prepend([0x0a, ...lenBytes(end - start)]); // KeyValueList.values = 1
      prepend([0x32, ...lenBytes(end - start)]); // AnyValue.kvlist_value = 6
    }
  }
  return buf.subarray(start, end);
}

/** A KeyValue field (as `field` of its message) with key `key` and the AnyValue bytes `value`. */
export const keyValue = (field: number, key: string, value: Uint8Array): Uint8Array => ld(field, str(1, key), ld(2, value));
