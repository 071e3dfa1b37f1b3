/**
 * W3C Baggage (https://www.w3.org/TR/baggage/), the `baggage` HTTP header:
 *
 *   baggage-string = list-member *( OWS "," OWS list-member )
 *   list-member    = key OWS "=" OWS value *( OWS ";" OWS property )
 *   property       = key OWS "=" OWS value / key OWS
 *   key            = token                          (RFC 7230)
 *   value          = *baggage-octet                 (printable ASCII but SP " , ; \; UTF-8 percent-encoded)
 *   OWS            = *( SP / HTAB )
 *
 * Parsing is lenient the way propagators are: a malformed list member (no `=`, a key that is not a
 * token, a value with forbidden characters or a bad percent-escape) is dropped and the others are
 * kept. Several `baggage` headers are one list (Node joins them with ", ").
 */

export interface BaggageMember {
  key: string;
  /** Percent-decoded. */
  value: string;
  /** The raw `;`-separated properties, trimmed (`key` or `key=value`); kept, not interpreted. */
  properties: string[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
const VALUE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]*$/;
/** Leading/trailing OWS (space and tab only: the grammar's whitespace). */
const trimOws = (s: string): string => s.replace(/^[ \t]+|[ \t]+$/g, '');

/** Every well-formed list member, in header order (duplicates kept). */
export function parseBaggage(header: string | readonly string[] | undefined): BaggageMember[] {
  if (header === undefined) return [];
  const text = typeof header === 'string' ? header : header.join(',');
  const out: BaggageMember[] = [];
  for (const raw of text.split(',')) {
    const [pair = '', ...props] = raw.split(';');
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const key = trimOws(pair.slice(0, eq));
    const encoded = trimOws(pair.slice(eq + 1));
    if (!TOKEN.test(key) || !VALUE.test(encoded)) continue;
    let value: string;
    try {
      value = decodeURIComponent(encoded);
    } catch {
      continue; // a bad %-escape: drop the member, keep the rest
    }
    out.push({ key, value, properties: props.map(trimOws).filter((p) => p !== '') });
  }
  return out;
}

/**
 * The value of one baggage key, or undefined. Keys are case-sensitive. When a key appears more
 * than once the last occurrence wins, as in the OpenTelemetry propagators (a later writer overrides).
 */
export function baggageValue(header: string | readonly string[] | undefined, key: string): string | undefined {
  let found: string | undefined;
  for (const m of parseBaggage(header)) if (m.key === key) found = m.value;
  return found;
}
