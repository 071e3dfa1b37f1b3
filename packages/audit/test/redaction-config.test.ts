import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REDACTED, k8sauditRedactionSchema, redactAuditEvent, redactionRulesFromConfig } from '../src/index.js';
import type { AuditEvent } from '../src/index.js';
import { v1Event } from './helpers.js';

const event = (objectRef: Record<string, unknown>, requestObject: unknown) => ({ ...v1Event('a'), level: 'Request', objectRef, requestObject }) as unknown as AuditEvent;

test('k8saudit_redaction with no value (or {}) is the default rules', () => {
  for (const v of [null, undefined, {}]) {
    const cfg = k8sauditRedactionSchema.parse(v);
    assert.equal(cfg, { default_rules: true, rules: [] });
    const rules = redactionRulesFromConfig(cfg);
    assert.equal(rules.rules.map((r) => r.name), ['secret', 'tokenreview', 'tokenrequest']);
  }
});

test('user rules as YAML gives them (null for an empty value), after the defaults; default_rules: false leaves only them', () => {
  const cfg = k8sauditRedactionSchema.parse({
    rules: [
      { name: 'sealed', resource: 'sealedsecrets', group: 'bitnami.com', paths: ['spec.encryptedData'] },
      { resource: 'databases', group: null, subresource: '', paths: ['spec.password', 'metadata.annotations["example.com/token"]'] },
    ],
  });
  assert.equal({ ...cfg.rules[1] }, { resource: 'databases', group: undefined, subresource: '', paths: ['spec.password', 'metadata.annotations["example.com/token"]'] });
  const rules = redactionRulesFromConfig(cfg);
  assert.equal(rules.rules.map((r) => r.name ?? `${r.group ?? '*'}/${r.resource}`), ['secret', 'tokenreview', 'tokenrequest', 'sealed', '*/databases']);
  const r = redactAuditEvent(event({ resource: 'sealedsecrets', apiGroup: 'bitnami.com' }, { spec: { encryptedData: { k: 'AgB...' } } }), rules);
  assert.equal(r.event.requestObject, { spec: { encryptedData: { k: REDACTED } } });
  assert.equal(redactAuditEvent(event({ resource: 'secrets' }, { data: { k: 'dg==' } }), rules).redactions, [{ rule: 'secret', path: 'requestObject.data' }]);

  const only = redactionRulesFromConfig(k8sauditRedactionSchema.parse({ default_rules: false, rules: [{ resource: 'x', paths: ['y'] }] }));
  const s = event({ resource: 'secrets' }, { data: { k: 'dg==' } });
  assert.is(redactAuditEvent(s, only).event, s);
});

test('errors name the key: unknown keys, missing resource or paths, bad paths', () => {
  const issues = (v: unknown): string[] => {
    const r = k8sauditRedactionSchema.safeParse(v);
    assert.not.ok(r.success, JSON.stringify(v));
    return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  assert.match(issues({ default_rule: true })[0]!, /Unrecognized key.*default_rule/);
  assert.match(issues({ default_rules: 'yes' })[0]!, /^default_rules: /);
  assert.match(issues({ rules: [{ paths: ['a'] }] })[0]!, /^rules\.0\.resource: /);
  assert.equal(issues({ rules: [{ resource: 'x', paths: [] }] }), ['rules.0.paths: expected at least one path, e.g. "spec.password"']);
  assert.equal(issues({ rules: [{ resource: 'x', paths: ['ok', 'a..b'] }] }), ['rules.0.paths.1: path "a..b": empty key at character 3']);
  assert.match(issues({ rules: [{ resource: 'x', paths: ['a'], field: 'y' }] })[0]!, /^rules\.0: Unrecognized key.*field/);
});

test.run();
