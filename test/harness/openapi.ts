/**
 * Validates Kubernetes manifests against the API server's OpenAPI v2 (swagger 2.0) document, the
 * way a strict `kubectl apply --validate=strict` would reject them before they reach a cluster:
 * unknown fields (with their JSON path), wrong types, missing required fields, integer formats,
 * base64 bytes, RFC 3339 times, quantities and int-or-string values. No cluster, no network.
 *
 *   const spec = loadOpenApi(openApiSpecPath('1.35'));
 *   const r = spec.validate(obj); // { kind, apiVersion, name, known, errors }
 *
 * Objects whose group/version/kind the document does not define (CRD instances such as
 * cert-manager's Certificate or Strimzi's KafkaTopic) come back with `known: false` and no
 * schema errors: the caller decides whether that is acceptable.
 *
 * How the Kubernetes document is read (checked against the 1.33, 1.34 and 1.35 documents):
 * - top-level kinds are the definitions with `x-kubernetes-group-version-kind` (the core group is "");
 * - `$ref: "#/definitions/<name>"` is the only kind of reference, never with sibling constraints;
 * - `Quantity` is declared `type: string`, but the API server also takes JSON numbers
 *   (`cpu: 1`): numbers and strings in Quantity syntax are accepted, anything else is an error;
 * - `IntOrString` is `type: string, format: int-or-string`: an integer or a string;
 * - `type: object` without `properties` or `additionalProperties` (RawExtension, FieldsV1, Patch,
 *   ...) is a free-form object, and a definition with no `type` and no `properties` (apiextensions
 *   JSON, JSONSchemaPropsOrBool/OrArray/OrStringArray) takes any value;
 * - `null` is "not set" (the API server decodes it so): it satisfies no `required`;
 * - `metadata.name` is not `required` in the document; it is checked separately for kinds whose
 *   `metadata` is ObjectMeta (not for *List, Status, DeleteOptions, APIGroup...);
 * - a top-level `status` is allowed and not checked;
 * - the document has no `enum`s (allowed values are only in descriptions); `enum` is checked anyway.
 */
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** One schema node of the swagger document (the subset Kubernetes uses). */
export interface Schema {
  $ref?: string;
  type?: string;
  format?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  enum?: unknown[];
  'x-kubernetes-group-version-kind'?: { group: string; version: string; kind: string }[];
}

export interface ValidationResult {
  kind: string;
  apiVersion: string;
  /** metadata.name ('' when missing). */
  name: string;
  /** Whether the document defines this apiVersion/kind; when false, `errors` only says what is missing at the top. */
  known: boolean;
  /** Every problem found, each `<json path>: <what>`, e.g. `spec.template.spec.containers[0].imagePullPolcy: unknown field`. */
  errors: string[];
  /** The definition the object was checked against, e.g. `io.k8s.api.apps.v1.Deployment`. */
  definition?: string;
}

export interface OpenApi {
  /** The file it was loaded from. */
  path: string;
  /** `definitions` of the document. */
  definitions: Record<string, Schema>;
  /** The definition name for an apiVersion (`group/version`, or `version` for the core group) and kind, if any. */
  definitionFor(apiVersion: string, kind: string): string | undefined;
  /** Validates one manifest object (see ValidationResult). */
  validate(obj: unknown): ValidationResult;
}

/** Where the Kubernetes OpenAPI documents are: `$KC_OPENAPI_DIR`, else `../shared/data/openapi` beside the checkout. */
export function openApiDir(): string {
  return process.env['KC_OPENAPI_DIR'] ?? fileURLToPath(new URL('../../../../shared/data/openapi/', import.meta.url));
}

/** `<openApiDir()>/swagger-v<minor>.json`, e.g. `openApiSpecPath('1.35')`; throws naming the file when it is missing. */
export function openApiSpecPath(version: string): string {
  const p = resolve(openApiDir(), `swagger-v${version.replace(/^v/, '')}.json`);
  if (!existsSync(p)) {
    throw new Error(`the Kubernetes OpenAPI v2 document for ${version} is not at ${p} (set KC_OPENAPI_DIR to the directory with swagger-v<version>.json; ` +
      'it is the API server\'s /openapi/v2, e.g. api/openapi-spec/swagger.json of kubernetes/kubernetes at that release)');
  }
  return p;
}

const REF_PREFIX = '#/definitions/';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';
const OBJECT_META = 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta';
/** Quantity syntax (k8s.io/apimachinery/pkg/api/resource): a signed decimal number, then a binary-SI, decimal-SI or exponent suffix. */
const QUANTITY_RE = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?\d+)?$/;
/** RFC 3339 date-time, as Go's time.RFC3339 parses it (fractional seconds optional). */
const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;
/** Standard base64 with padding (Go's encoding/json []byte); line breaks are ignored, as Go's decoder does. */
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);

/** What a value is, in the document's terms, for error messages. */
function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (v instanceof Date) return 'timestamp';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  if (typeof v === 'object') return 'object';
  return typeof v;
}

const show = (v: unknown): string => {
  const s = v instanceof Date ? v.toISOString() : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
};

/** `a.b`, `a["app.kubernetes.io/name"]`, `a[0]`. */
const child = (path: string, key: string): string =>
  /^[A-Za-z_$][\w$-]*$/.test(key) ? (path ? `${path}.${key}` : key) : `${path}[${JSON.stringify(key)}]`;
const at = (path: string): string => path || '(root)';

class Validator {
  constructor(private readonly definitions: Record<string, Schema>) {}

  /** Follows `$ref`s; returns the schema and the name of the last definition reached. */
  private resolve(schema: Schema, path: string, errors: string[]): { schema: Schema; name?: string } | undefined {
    let name: string | undefined;
    for (let hops = 0; schema.$ref !== undefined; hops++) {
      const ref = schema.$ref;
      const target = ref.startsWith(REF_PREFIX) ? this.definitions[ref.slice(REF_PREFIX.length)] : undefined;
      if (!target || hops > 32) {
        errors.push(`${at(path)}: cannot check, the document's $ref ${ref} does not resolve`);
        return undefined;
      }
      name = ref.slice(REF_PREFIX.length);
      schema = target;
    }
    return { schema, name };
  }

  check(schemaIn: Schema, value: unknown, path: string, errors: string[]): void {
    const r = this.resolve(schemaIn, path, errors);
    if (!r) return;
    const { schema, name } = r;
    // The API server decodes null as "not set"; `required` is checked by the parent.
    if (value === null || value === undefined) return;

    if (schema.enum && !schema.enum.some((e) => e === value)) {
      errors.push(`${at(path)}: ${show(value)} is not one of ${schema.enum.map(show).join(', ')}`);
      return;
    }
    if (name === QUANTITY) {
      if (typeof value === 'number') {
        if (!Number.isFinite(value)) errors.push(`${at(path)}: ${show(value)} is not a quantity`);
      } else if (typeof value !== 'string') {
        errors.push(`${at(path)}: expected a quantity (string or number), got ${typeOf(value)}`);
      } else if (!QUANTITY_RE.test(value)) {
        errors.push(`${at(path)}: ${show(value)} is not a quantity (a number with an optional suffix: Ki Mi Gi Ti Pi Ei, n u m k M G T P E, or e<exp>)`);
      }
      return;
    }
    if (schema.format === 'int-or-string') {
      if (typeof value === 'string') return;
      if (typeof value === 'number' && Number.isInteger(value)) {
        if (value < INT32_MIN || value > INT32_MAX) errors.push(`${at(path)}: ${value} is out of range for int-or-string (int32)`);
        return;
      }
      errors.push(`${at(path)}: expected integer or string (int-or-string), got ${typeOf(value)} ${show(value)}`);
      return;
    }

    const type = schema.type ?? (schema.properties ? 'object' : undefined);
    switch (type) {
      case undefined:
        return; // any value (apiextensions JSON, JSONSchemaPropsOrBool, ...)
      case 'object':
        this.checkObject(schema, value, path, errors);
        return;
      case 'array':
        if (!Array.isArray(value)) { errors.push(`${at(path)}: expected array, got ${typeOf(value)}`); return; }
        if (schema.items) value.forEach((item, i) => this.check(schema.items as Schema, item, `${path}[${i}]`, errors));
        return;
      case 'string':
        this.checkString(schema, value, path, errors);
        return;
      case 'integer':
        if (typeof value !== 'number' || !Number.isInteger(value)) {
          errors.push(`${at(path)}: expected integer${schema.format ? ` (${schema.format})` : ''}, got ${typeOf(value)} ${show(value)}`);
        } else if (schema.format === 'int32' && (value < INT32_MIN || value > INT32_MAX)) {
          errors.push(`${at(path)}: ${value} is out of range for int32`);
        } else if (schema.format === 'int64' && !Number.isSafeInteger(value)) {
          errors.push(`${at(path)}: ${value} cannot be represented exactly (int64 beyond 2^53 in a JS number)`);
        }
        return;
      case 'number':
        if (typeof value !== 'number' || !Number.isFinite(value)) errors.push(`${at(path)}: expected number, got ${typeOf(value)} ${show(value)}`);
        return;
      case 'boolean':
        if (typeof value !== 'boolean') errors.push(`${at(path)}: expected boolean, got ${typeOf(value)} ${show(value)}`);
        return;
      default:
        errors.push(`${at(path)}: cannot check, the document uses type ${JSON.stringify(type)}`);
    }
  }

  private checkString(schema: Schema, value: unknown, path: string, errors: string[]): void {
    if (schema.format === 'date-time' && value instanceof Date) {
      // A YAML 1.1 timestamp read as a Date by a lenient parser: the API server would get RFC 3339.
      if (Number.isNaN(value.getTime())) errors.push(`${at(path)}: not a valid date-time`);
      return;
    }
    if (typeof value !== 'string') {
      errors.push(`${at(path)}: expected string${schema.format ? ` (${schema.format})` : ''}, got ${typeOf(value)} ${show(value)}`);
      return;
    }
    if (schema.format === 'byte' && !BASE64_RE.test(value.replace(/[\r\n]/g, ''))) {
      errors.push(`${at(path)}: not valid base64 (format byte): ${show(value)}`);
    } else if (schema.format === 'date-time' && !(DATE_TIME_RE.test(value) && !Number.isNaN(Date.parse(value)))) {
      errors.push(`${at(path)}: not an RFC 3339 date-time: ${show(value)}`);
    }
  }

  private checkObject(schema: Schema, value: unknown, path: string, errors: string[], skip?: ReadonlySet<string>): void {
    if (!isPlainObject(value)) { errors.push(`${at(path)}: expected object, got ${typeOf(value)}`); return; }
    const props = schema.properties;
    const extra = schema.additionalProperties;
    for (const [key, v] of Object.entries(value)) {
      if (skip?.has(key)) continue;
      const p = child(path, key);
      const s = props?.[key];
      if (s && Object.hasOwn(props, key)) this.check(s, v, p, errors);
      else if (typeof extra === 'object') this.check(extra, v, p, errors);
      else if (extra === true || (!props && extra === undefined)) continue; // free-form object
      else errors.push(`${p}: unknown field`);
    }
    for (const req of schema.required ?? []) {
      if (skip?.has(req)) continue;
      if (value[req] === undefined || value[req] === null) errors.push(`${child(path, req)}: missing required field`);
    }
  }

  /** A top-level object: `status` is allowed and not checked (it is the server's to write). */
  checkTop(schema: Schema, value: Record<string, unknown>, errors: string[]): void {
    this.checkObject(schema, value, '', errors, new Set(['status']));
  }
}

/** Parses `group/version` or `version` (core group). */
function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.indexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

const cache = new Map<string, OpenApi>();

/**
 * Loads a swagger 2.0 document (the Kubernetes API server's /openapi/v2) and indexes its kinds.
 * Cached per path: loading the same file twice in one process returns the same object.
 */
export function loadOpenApi(path: string): OpenApi {
  const abs = resolve(path);
  const hit = cache.get(abs);
  if (hit) return hit;
  let doc: { swagger?: unknown; definitions?: Record<string, Schema> };
  try {
    doc = JSON.parse(readFileSync(abs, 'utf8')) as typeof doc;
  } catch (e) {
    throw new Error(`cannot load the OpenAPI document ${abs}: ${(e as Error).message}`);
  }
  if (doc.swagger !== '2.0' || !isPlainObject(doc.definitions)) {
    throw new Error(`${abs} is not a swagger 2.0 document with definitions (swagger: ${JSON.stringify(doc.swagger)})`);
  }
  const definitions = doc.definitions;
  const byGvk = new Map<string, string>();
  for (const [name, def] of Object.entries(definitions)) {
    for (const g of def['x-kubernetes-group-version-kind'] ?? []) {
      const key = `${g.group}/${g.version}/${g.kind}`;
      // Keep the first; the Kubernetes documents have no duplicates.
      if (!byGvk.has(key)) byGvk.set(key, name);
    }
  }
  const validator = new Validator(definitions);
  const definitionFor = (apiVersion: string, kind: string): string | undefined => {
    const { group, version } = splitApiVersion(apiVersion);
    return byGvk.get(`${group}/${version}/${kind}`);
  };

  const api: OpenApi = {
    path: abs,
    definitions,
    definitionFor,
    validate(obj: unknown): ValidationResult {
      if (!isPlainObject(obj)) return { kind: '', apiVersion: '', name: '', known: false, errors: [`(root): expected a manifest object, got ${typeOf(obj)}`] };
      const kind = typeof obj['kind'] === 'string' ? obj['kind'] : '';
      const apiVersion = typeof obj['apiVersion'] === 'string' ? obj['apiVersion'] : '';
      const meta = obj['metadata'];
      const name = isPlainObject(meta) && typeof meta['name'] === 'string' ? meta['name'] : '';
      const top: string[] = [];
      if (!apiVersion) top.push(obj['apiVersion'] === undefined ? 'apiVersion: missing required field' : `apiVersion: expected string, got ${typeOf(obj['apiVersion'])}`);
      if (!kind) top.push(obj['kind'] === undefined ? 'kind: missing required field' : `kind: expected string, got ${typeOf(obj['kind'])}`);
      if (top.length) return { kind, apiVersion, name, known: false, errors: top };
      const definition = definitionFor(apiVersion, kind);
      if (!definition) return { kind, apiVersion, name, known: false, errors: [] };

      const errors: string[] = [];
      validator.checkTop(definitions[definition] as Schema, obj, errors);
      // Not in the document's `required`, but every object with ObjectMeta a manifest creates needs a
      // name (kinds without it, e.g. Status, DeleteOptions, APIGroup, or ListMeta in *List, do not).
      if (definitions[definition]?.properties?.['metadata']?.$ref === REF_PREFIX + OBJECT_META) {
        const rawName = isPlainObject(meta) ? meta['name'] : undefined;
        if (rawName === undefined || rawName === null) errors.push('metadata.name: missing required field');
        else if (rawName === '') errors.push('metadata.name: must not be empty');
      }
      return { kind, apiVersion, name, known: true, errors, definition };
    },
  };
  cache.set(abs, api);
  return api;
}
