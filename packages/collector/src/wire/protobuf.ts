/**
 * Just enough protobuf for the small messages around an export (ExportTraceServiceResponse,
 * google.rpc.Status, RetryInfo): the spans themselves go through @kube-correlate/otlp.
 */

const decoder = new TextDecoder();
export const utf8 = (b: Uint8Array): string => decoder.decode(b);

/**
 * The top-level fields of one protobuf message, as [field number, wire type, value]: a number for
 * varints (exact below 2^53), the bytes for length-delimited fields, undefined for fixed32/64.
 * Throws on truncated input and on groups.
 */
export function* fields(buf: Uint8Array): Generator<[number, number, number | Uint8Array | undefined]> {
  let pos = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    throw new Error('varint longer than 10 bytes');
  };
  const skip = (n: number): void => {
    if (pos + n > buf.length) throw new Error('truncated field');
    pos += n;
  };
  while (pos < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (wireType === 0) {
      yield [field, wireType, varint()];
    } else if (wireType === 2) {
      const len = varint();
      const start = pos;
      skip(len);
      yield [field, wireType, buf.subarray(start, pos)];
    } else if (wireType === 1 || wireType === 5) {
      skip(wireType === 1 ? 8 : 4);
      yield [field, wireType, undefined];
    } else {
      throw new Error(`unsupported wire type ${wireType} for field ${field}`);
    }
  }
}

/** Writes a message from [field number, value] pairs: non-negative integers as varints, bytes and strings length-delimited. */
export function message(...entries: Array<[number, number | string | Uint8Array]>): Buffer {
  const out: number[] = [];
  const varint = (n: number): void => {
    while (n >= 0x80) {
      out.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    out.push(n);
  };
  for (const [field, value] of entries) {
    if (typeof value === 'number') {
      varint(field * 8);
      varint(value);
    } else {
      const bytes = typeof value === 'string' ? Buffer.from(value) : value;
      varint(field * 8 + 2);
      varint(bytes.length);
      for (const b of bytes) out.push(b);
    }
  }
  return Buffer.from(out);
}
