/**
 * Redaction of secrets in audit events, before anything is stored, written to Kafka or exported.
 *
 * A mistaken audit policy logs Secrets at Request or RequestResponse level: `data` and `stringData`
 * in the request and response objects, in every item of a list response, in patch bodies, and once
 * more inside the `kubectl.kubernetes.io/last-applied-configuration` annotation that `kubectl apply`
 * writes. TokenReview requests carry a bearer token (`spec.token`), TokenRequest responses a new one
 * (`status.token`). Rules name a resource (as `objectRef` does) and the paths to hide inside its
 * objects; the default rules cover those three, users add their own (README.md, "Redaction").
 *
 * A redacted value becomes the string REDACTED. A redacted map (Secret `data`) keeps its keys, so
 * one can still see which keys a Secret had and which a request changed; only values go. Null
 * values stay null (a merge patch deleting a key hides nothing). Nothing else of the event changes.
 *
 * The input is never modified: the result shares every unchanged part with it and copies only the
 * objects on the way to a redacted value. An event no rule applies to (no request or response
 * object, or another resource: nearly every event) is returned as it is, the same object, after
 * one map lookup.
 */
import type { AuditEvent } from './model.js';
import { nestedDeeperThan } from './depth.js';
import { MAX_AUDIT_EVENT_DEPTH } from './event-list.js';

/** What a redacted value is replaced with. A string, so every reader's schema still holds for maps of strings. */
export const REDACTED = '<redacted by kube-correlate>';

/** kubectl's copy of the last applied object, a JSON string in `metadata.annotations`. */
export const LAST_APPLIED_ANNOTATION = 'kubectl.kubernetes.io/last-applied-configuration';

/** One rule: which requests (by `objectRef`) and which paths inside their objects. */
export interface RedactionRule {
  /** Reported with each redaction (and counted under it). Default: `<group>/<resource>[/<subresource>]`. */
  name?: string;
  /** `objectRef.resource`, e.g. `secrets`. */
  resource: string;
  /** `objectRef.apiGroup`: `''` is the core group. Omitted: any group. */
  group?: string;
  /** `objectRef.subresource`: `''` is the main resource only. Omitted: the resource and all its subresources. */
  subresource?: string;
  /**
   * Paths inside the objects of matching requests: keys joined by `.`, `[*]` for every element of an
   * array (or member of a map), `[3]` for one element, `["a.b/c"]` for a key holding `.`, `[` or `]`.
   * E.g. `data`, `spec.password`, `items[*].data`, `metadata.annotations["example.com/token"]`.
   */
  paths: readonly string[];
}

/** Secret `data`/`stringData`, TokenReview `spec.token`, TokenRequest `status.token`. */
export const DEFAULT_REDACTION_RULES: readonly RedactionRule[] = Object.freeze([
  { name: 'secret', resource: 'secrets', group: '', paths: ['data', 'stringData'] },
  { name: 'tokenreview', resource: 'tokenreviews', group: 'authentication.k8s.io', paths: ['spec.token'] },
  { name: 'tokenrequest', resource: 'serviceaccounts', group: '', subresource: 'token', paths: ['status.token'] },
]);

/** A redacted location: the rule's name and where, e.g. `responseObject.items[2].data`. */
export interface Redaction {
  rule: string;
  path: string;
}

export class RedactionRuleError extends Error {
  override readonly name = 'RedactionRuleError';
}

/** A path segment: a key, an array index, or `*` (every element or member). */
export type RedactionPathSegment = { key: string } | { index: number } | { any: true };
type Segment = RedactionPathSegment;

interface CompiledRule {
  name: string;
  group: string | undefined;
  subresource: string | undefined;
  paths: Segment[][];
}

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const PLAIN_KEY = /^[A-Za-z_$][\w$-]*$/;

/** Parses a rule path; throws RedactionRuleError saying what is wrong and where. */
export function parseRedactionPath(path: string): Segment[] {
  const segs: Segment[] = [];
  let i = 0;
  const bad = (what: string): never => {
    throw new RedactionRuleError(`path ${JSON.stringify(path)}: ${what} at character ${i + 1}`);
  };
  if (path === '') throw new RedactionRuleError('path "": empty path');
  while (i < path.length) {
    if (path[i] === '[') {
      if (path[i + 1] === '"') {
        // A quoted key, JSON string syntax: may hold ".", "[", "]" and escaped quotes.
        let j = i + 2;
        while (j < path.length && path[j] !== '"') j += path[j] === '\\' ? 2 : 1;
        if (j >= path.length || path[j + 1] !== ']') bad('expected ["<key>"]');
        try {
          segs.push({ key: JSON.parse(path.slice(i + 1, j + 1)) as string });
        } catch {
          bad('invalid quoted key');
        }
        i = j + 2;
      } else {
        const close = path.indexOf(']', i);
        const inner = close < 0 ? '' : path.slice(i + 1, close);
        if (inner === '*') segs.push({ any: true });
        else if (/^\d{1,9}$/.test(inner)) segs.push({ index: Number(inner) });
        else bad('expected [*], [<index>] or ["<key>"]');
        i = close + 1;
      }
    } else {
      let j = i;
      while (j < path.length && path[j] !== '.' && path[j] !== '[' && path[j] !== ']') j++;
      if (j === i) bad('empty key');
      segs.push({ key: path.slice(i, j) });
      i = j;
      if (path[i] === ']') bad('"]" without "["');
    }
    if (i < path.length) {
      if (path[i] === '.') {
        i++;
        if (i === path.length || path[i] === '[') bad('expected a key after "."');
      } else if (path[i] !== '[') bad('expected "." or "["');
    }
  }
  return segs;
}

function formatSegments(segs: ReadonlyArray<string | number>): string {
  let s = '';
  for (const p of segs) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (PLAIN_KEY.test(p)) s += s ? `.${p}` : p;
    else s += `[${JSON.stringify(p)}]`;
  }
  return s;
}

/** Compiled rules, looked up by resource. Build once (compileRedactionRules) and share. */
export class RedactionRules {
  readonly rules: readonly RedactionRule[];
  private readonly byResource = new Map<string, CompiledRule[]>();
  /** Longest rule path, plus the annotation's three segments: patch paths longer than this cannot reach a redacted value. */
  readonly maxPathLength: number;

  /** `rules` in order; errors name a rule by its index from `firstNumbered` on (the user's rules after the defaults). */
  constructor(rules: readonly RedactionRule[], firstNumbered = 0) {
    this.rules = rules;
    let max = 3;
    for (const [k, r] of rules.entries()) {
      const i = k - firstNumbered;
      if (typeof r.resource !== 'string' || r.resource === '') throw new RedactionRuleError(`rules[${i}]: resource is required`);
      if (!Array.isArray(r.paths) || r.paths.length === 0) throw new RedactionRuleError(`rules[${i}] (${r.resource}): paths must list at least one path`);
      const name = r.name ?? [r.group ?? '*', r.resource, ...(r.subresource ? [r.subresource] : [])].join('/');
      const paths = r.paths.map((p) => {
        try {
          return parseRedactionPath(p);
        } catch (err) {
          throw new RedactionRuleError(`rules[${i}] (${name}): ${(err as Error).message}`);
        }
      });
      for (const p of paths) max = Math.max(max, p.length);
      let list = this.byResource.get(r.resource);
      if (!list) this.byResource.set(r.resource, (list = []));
      list.push({ name, group: r.group, subresource: r.subresource, paths });
    }
    this.maxPathLength = max;
  }

  /** The rules that apply to a request on this objectRef. */
  match(ref: unknown): CompiledRule[] {
    if (!isObj(ref)) return NONE;
    const list = typeof ref.resource === 'string' ? this.byResource.get(ref.resource) : undefined;
    if (!list) return NONE;
    const group = typeof ref.apiGroup === 'string' ? ref.apiGroup : '';
    const sub = typeof ref.subresource === 'string' ? ref.subresource : '';
    let out: CompiledRule[] | undefined;
    for (const r of list) {
      if ((r.group === undefined || r.group === group) && (r.subresource === undefined || r.subresource === sub)) (out ??= []).push(r);
    }
    return out ?? NONE;
  }
}

const NONE: CompiledRule[] = [];

/** Compiles rules (user rules after the defaults, when `defaults` is true). Throws RedactionRuleError on a bad rule. */
export function compileRedactionRules(rules: readonly RedactionRule[] = [], defaults = true): RedactionRules {
  return defaults ? new RedactionRules([...DEFAULT_REDACTION_RULES, ...rules], DEFAULT_REDACTION_RULES.length) : new RedactionRules(rules);
}

/** The default rules, compiled. */
export const DEFAULT_RULES: RedactionRules = compileRedactionRules();

/** Where redactions are recorded: the rule, and the location as path segments from the event. */
interface Sink {
  rule: string;
  loc: Array<string | number>;
  out: Redaction[];
  /** For a JSON Patch value: the first `strip` segments of loc (the wrapping pointer) become `base`. */
  base?: Array<string | number>;
  strip?: number;
}

function record(sink: Sink): void {
  const loc = sink.base ? [...sink.base, ...sink.loc.slice(sink.strip)] : sink.loc;
  sink.out.push({ rule: sink.rule, path: formatSegments(loc) });
}

/**
 * The value at a redacted location: a map keeps its keys with every non-null value replaced; null
 * stays null; anything else becomes REDACTED. Returns `v` itself when nothing changes.
 */
function redactValue(v: unknown, sink: Sink): unknown {
  if (v === null || v === undefined || v === REDACTED) return v;
  if (isObj(v)) {
    let copy: Obj | undefined;
    for (const k in v) {
      const x = v[k];
      if (x === null || x === undefined || x === REDACTED) continue;
      setOwn((copy ??= { ...v }), k, REDACTED);
    }
    if (!copy) return v;
    record(sink);
    return copy;
  }
  record(sink);
  return REDACTED;
}

/** Sets own member `key` of `o`: defined, so that "__proto__" stays a plain member as JSON.parse made it. */
function setOwn(o: Obj, key: string, value: unknown): void {
  Object.defineProperty(o, key, { value, writable: true, enumerable: true, configurable: true });
}

/** A copy of `o` with own member `key` set. */
function withKey(o: Obj, key: string, value: unknown): Obj {
  const copy = { ...o };
  setOwn(copy, key, value);
  return copy;
}

/** Applies one path (from segment i) under `v`; returns `v` itself when nothing changes. */
function applyPath(v: unknown, segs: readonly Segment[], i: number, sink: Sink): unknown {
  if (i === segs.length) return redactValue(v, sink);
  const seg = segs[i]!;
  if ('key' in seg) {
    if (!isObj(v) || !Object.hasOwn(v, seg.key)) return v;
    const child = v[seg.key];
    sink.loc.push(seg.key);
    const next = applyPath(child, segs, i + 1, sink);
    sink.loc.pop();
    return next === child ? v : withKey(v, seg.key, next);
  }
  if ('index' in seg) {
    if (!Array.isArray(v) || seg.index >= v.length) return v;
    const child: unknown = v[seg.index];
    sink.loc.push(seg.index);
    const next = applyPath(child, segs, i + 1, sink);
    sink.loc.pop();
    if (next === child) return v;
    const copy = v.slice();
    copy[seg.index] = next;
    return copy;
  }
  if (Array.isArray(v)) {
    let copy: unknown[] | undefined;
    for (let k = 0; k < v.length; k++) {
      const child: unknown = v[k];
      sink.loc.push(k);
      const next = applyPath(child, segs, i + 1, sink);
      sink.loc.pop();
      if (next !== child) (copy ??= v.slice())[k] = next;
    }
    return copy ?? v;
  }
  if (isObj(v)) {
    let copy: Obj | undefined;
    for (const k in v) {
      const child = v[k];
      sink.loc.push(k);
      const next = applyPath(child, segs, i + 1, sink);
      sink.loc.pop();
      if (next !== child) setOwn((copy ??= { ...v }), k, next);
    }
    return copy ?? v;
  }
  return v;
}

function applyPaths(v: unknown, rule: CompiledRule, sink: Sink): unknown {
  for (const segs of rule.paths) v = applyPath(v, segs, 0, sink);
  return v;
}

/**
 * The rule's paths inside the `last-applied-configuration` copy of an object: parsed, redacted,
 * serialized again (with kubectl's trailing newline when it had one). An annotation that is not a
 * JSON object, or nests deeper than an event may, is replaced whole.
 */
function redactLastApplied(o: Obj, rule: CompiledRule, sink: Sink): Obj {
  const meta = o.metadata;
  if (!isObj(meta)) return o;
  const ann = meta.annotations;
  if (!isObj(ann) || !Object.hasOwn(ann, LAST_APPLIED_ANNOTATION)) return o;
  const text = ann[LAST_APPLIED_ANNOTATION];
  if (text === null || text === undefined || text === REDACTED) return o;
  sink.loc.push('metadata', 'annotations', LAST_APPLIED_ANNOTATION);
  let replacement: unknown = REDACTED;
  let parsed: unknown;
  try {
    parsed = typeof text === 'string' ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (isObj(parsed) && !nestedDeeperThan(parsed, MAX_AUDIT_EVENT_DEPTH)) {
    const redacted = applyPaths(parsed, rule, sink);
    replacement = redacted === parsed ? text : JSON.stringify(redacted) + ((text as string).endsWith('\n') ? '\n' : '');
  } else {
    record(sink);
  }
  sink.loc.length -= 3;
  if (replacement === text) return o;
  return withKey(o, 'metadata', withKey(meta, 'annotations', withKey(ann, LAST_APPLIED_ANNOTATION, replacement)));
}

/** One object as the API serves it: itself, its last-applied copy, a list's items, a Table's row objects. */
function redactObject(o: Obj, rule: CompiledRule, sink: Sink): Obj {
  let out = applyPaths(o, rule, sink) as Obj;
  out = redactLastApplied(out, rule, sink);
  const items = out.items;
  if (Array.isArray(items)) {
    let copy: unknown[] | undefined;
    sink.loc.push('items');
    for (let k = 0; k < items.length; k++) {
      const item: unknown = items[k];
      if (!isObj(item)) continue;
      sink.loc.push(k);
      const next = redactLastApplied(applyPaths(item, rule, sink) as Obj, rule, sink);
      sink.loc.pop();
      if (next !== item) (copy ??= items.slice())[k] = next;
    }
    sink.loc.pop();
    if (copy) out = withKey(out, 'items', copy);
  }
  const rows = out.rows;
  if (out.kind === 'Table' && Array.isArray(rows)) {
    // kubectl get's Table: each row may carry the object (includeObject=Object) or its metadata.
    let copy: unknown[] | undefined;
    sink.loc.push('rows');
    for (let k = 0; k < rows.length; k++) {
      const row: unknown = rows[k];
      if (!isObj(row) || !isObj(row.object)) continue;
      sink.loc.push(k, 'object');
      const next = redactLastApplied(applyPaths(row.object, rule, sink) as Obj, rule, sink);
      sink.loc.length -= 2;
      if (next !== row.object) (copy ??= rows.slice())[k] = withKey(row, 'object', next);
    }
    sink.loc.pop();
    if (copy) out = withKey(out, 'rows', copy);
  }
  return out;
}

/** RFC 6901 pointer to segments; undefined when it is not one. */
function parsePointer(p: string): string[] | undefined {
  if (p === '') return [];
  if (p[0] !== '/') return undefined;
  return p.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function segmentMatches(seg: Segment, token: string): boolean {
  if ('any' in seg) return true;
  if ('key' in seg) return seg.key === token;
  return String(seg.index) === token;
}

/**
 * A JSON Patch (RFC 6902) body: the `value` of each op lands at its `path`. A value inside a
 * redacted location (`/data/key`) is redacted whole; a value holding one (`/data`, `/`,
 * `/metadata/annotations`) has the rule applied as if it sat in an object at that path. A value
 * whose path is not a string or not a pointer is redacted whole: there is no telling where it lands.
 */
function redactJsonPatch(ops: unknown[], rule: CompiledRule, sink: Sink, maxPathLength: number): unknown[] {
  let copy: unknown[] | undefined;
  for (let j = 0; j < ops.length; j++) {
    const op: unknown = ops[j];
    if (!isObj(op) || !Object.hasOwn(op, 'value')) continue;
    const value = op.value;
    sink.loc.push(j, 'value');
    const pointer = typeof op.path === 'string' ? parsePointer(op.path) : undefined;
    let next: unknown;
    if (pointer === undefined || rule.paths.some((segs) => segs.length < pointer.length && segs.every((s, k) => segmentMatches(s, pointer[k]!)))) {
      next = redactValue(value, sink);
    } else if (pointer.length > maxPathLength) {
      next = value;
    } else {
      // Wrap the value in objects up to its path, redact that object, unwrap.
      let wrapped: unknown = value;
      for (let k = pointer.length - 1; k >= 0; k--) wrapped = withKey({}, pointer[k]!, wrapped);
      const inner: Sink = { rule: sink.rule, out: sink.out, loc: [], base: [...sink.loc], strip: pointer.length };
      const out = isObj(wrapped) ? redactObject(wrapped, rule, inner) : applyPaths(wrapped, rule, inner);
      next = out;
      for (const t of pointer) next = isObj(next) && Object.hasOwn(next, t) ? next[t] : undefined;
      if (out === wrapped) next = value;
    }
    sink.loc.length -= 2;
    if (next !== value) (copy ??= ops.slice())[j] = withKey(op, 'value', next);
  }
  return copy ?? ops;
}

/**
 * Redacts what `rules` name in the event's `requestObject` and `responseObject`. Returns the event
 * (the same object when nothing was redacted, else a copy sharing every unchanged part) and one
 * entry per redacted location. Never throws, whatever the shapes inside the event.
 */
export function redactAuditEvent(event: AuditEvent, rules: RedactionRules = DEFAULT_RULES): { event: AuditEvent; redactions: Redaction[] } {
  const req = event.requestObject;
  const res = event.responseObject;
  if ((req === undefined || req === null) && (res === undefined || res === null)) return { event, redactions: [] };
  const matched = rules.match(event.objectRef);
  if (matched.length === 0) return { event, redactions: [] };
  const redactions: Redaction[] = [];
  let out: AuditEvent | undefined;
  for (const field of ['requestObject', 'responseObject'] as const) {
    const before = event[field];
    if (before === undefined || before === null) continue;
    let v: unknown = before;
    for (const rule of matched) {
      const sink: Sink = { rule: rule.name, loc: [field], out: redactions };
      if (isObj(v)) v = redactObject(v, rule, sink);
      else if (Array.isArray(v)) v = redactJsonPatch(v, rule, sink, rules.maxPathLength);
      // A body logged as a string (a YAML apply patch): no telling what is in it.
      else if (typeof v === 'string') v = redactValue(v, sink);
    }
    if (v !== before) (out ??= { ...event })[field] = v;
  }
  return { event: out ?? event, redactions };
}
