import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pipeline, withComponentConfig } from '@kube-correlate/collector';
import { treeAuditStages, treeNodes, type RequestTree } from '@kube-correlate/correlator';
import { generateDeploymentScenario, writeScenarioFiles } from '@kube-correlate/fixtures';
import { createLogger } from '@kube-correlate/telemetry';
import { CliError } from '../errors.js';
import { renderTree } from '../render.js';
import { parseEndpoint } from '../transport.js';
import { DEFAULT_QUERY_ENDPOINT } from './query.js';
import { runReplay } from './replay.js';
import { loadStartConfig } from './start.js';

export interface DemoOptions {
  /** Query API of the running pipeline; its receivers' addresses are asked from it. */
  endpoint?: string;
  /** OTLP/HTTP base URL to send to, instead of where the pipeline says its receiver listens. */
  otlpEndpoint?: string;
  /** Audit webhook URL to send to, instead of where the pipeline says its receiver listens. */
  auditEndpoint?: string;
  json?: boolean;
  /** How long to wait for the tree to settle. */
  timeoutMs?: number;
}

/**
 * `npm run demo`: generates the Deployment scenario (kubectl apply, then the controllers' requests),
 * replays it into the running pipeline and prints the kubectl apply request's tree. The pipeline
 * answering on the query endpoint (`--endpoint`) says where its OTLP/HTTP and audit webhook
 * receivers listen (GET /api/v1/receivers), so a pipeline on other ports than the defaults gets
 * the data (`--otlp-endpoint` / `--audit-endpoint` override). When no pipeline answers, it runs a
 * temporary one in this process.
 */
export async function runDemo(opts: DemoOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  const endpoint = parseEndpoint('--endpoint', opts.endpoint ?? DEFAULT_QUERY_ENDPOINT, DEFAULT_QUERY_ENDPOINT).href;
  const dir = mkdtempSync(join(tmpdir(), 'kube-correlate-demo-'));
  let pipeline: Pipeline | undefined;
  try {
    const scenario = generateDeploymentScenario({ seed: Date.now() % 1_000_000, start: new Date() });
    const files = writeScenarioFiles(scenario, dir);
    let query = endpoint;
    let otlpEndpoint = opts.otlpEndpoint;
    let auditEndpoint = opts.auditEndpoint;
    if (await reachable(endpoint)) {
      if (otlpEndpoint === undefined || auditEndpoint === undefined) {
        const at = await receiversOf(endpoint);
        otlpEndpoint ??= at.otlpHttp;
        auditEndpoint ??= at.auditWebhook;
      }
      if (otlpEndpoint === undefined || auditEndpoint === undefined) {
        throw new CliError(`the pipeline at ${endpoint} has no ${otlpEndpoint === undefined ? 'OTLP/HTTP' : 'audit webhook'} receiver (a Kafka-mode store?): give --otlp-endpoint and --audit-endpoint`);
      }
    } else {
      process.stderr.write(`no pipeline answers at ${endpoint}: starting a temporary one in this process (data in ${dir})\n`);
      // Ports chosen by the OS so the demo never collides with anything; settle quickly.
      let config = loadStartConfig({ data: join(dir, 'data') });
      config = withComponentConfig(config, 'receivers', 'otlp', (c) => ({ protocols: { http: { ...c.protocols.http!, endpoint: '127.0.0.1:0' } } })) ?? config;
      config = withComponentConfig(config, 'receivers', 'k8saudit', (c) => ({ ...c, endpoint: '127.0.0.1:0' })) ?? config;
      config = withComponentConfig(config, 'extensions', 'store', (c) => ({ ...c, endpoint: '127.0.0.1:0' })) ?? config;
      config = withComponentConfig(config, 'exporters', 'correlator', (c) => ({ ...c, settle_after: '500ms' })) ?? config;
      pipeline = new Pipeline({ config, logger: createLogger({ name: 'demo', level: 'warn' }) });
      await pipeline.start();
      query = `http://${pipeline.addresses.query}`;
      otlpEndpoint = `http://${pipeline.addresses.otlpHttp}`;
      auditEndpoint = `http://${pipeline.addresses.auditWebhook}/`;
    }
    const sent = await runReplay({ otlp: files.otlpPath, audit: files.auditPath, otlpEndpoint, auditEndpoint });
    if (sent.refused) throw new CliError(`the pipeline refused ${sent.refused} replayed items; see the messages above`);
    process.stderr.write(`replayed ${sent.otlpRequests} OTLP requests and ${sent.auditEvents} audit events (${scenario.requests.length} API requests)\n`);

    const want = scenario.applyRequest;
    const tree = await waitForTree(query, {
      traceId: want.traceId,
      spans: want.spans.length,
      stages: want.auditEvents.map((e) => `${e.auditID} ${e.stage}`),
      traces: new Set(scenario.traces.map((t) => t.traceId)),
    }, opts.timeoutMs ?? 60_000);
    out.write(opts.json ? JSON.stringify({ traceId: tree.traceId, root: tree.root }, null, 2) + '\n' : renderTree(tree));
    process.stderr.write(`\nThe other requests of the scenario: ${scenario.requests.map((r) => `${r.label} (correlate --trace ${r.traceId})`).join(', ')}\n`);
    return 0;
  } finally {
    await pipeline?.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Where the pipeline behind a query API receives OTLP/HTTP and audit events, as URLs: a receiver
 * listening on every address (0.0.0.0, ::) is reached at the query API's host.
 */
async function receiversOf(endpoint: string): Promise<{ otlpHttp?: string; auditWebhook?: string }> {
  let body: { otlpHttp?: string; auditWebhook?: string };
  try {
    const res = await fetch(new URL('/api/v1/receivers', endpoint), { signal: AbortSignal.timeout(5000) });
    body = res.ok ? ((await res.json()) as typeof body) : {};
  } catch {
    body = {};
  }
  const host = new URL(endpoint).hostname;
  const url = (addr: string | undefined, path: string) => {
    if (!addr) return undefined;
    const i = addr.lastIndexOf(':');
    const h = addr.slice(0, i);
    return `http://${h === '0.0.0.0' || h === '[::]' || h === '::' ? host : h}:${addr.slice(i + 1)}${path}`;
  };
  return { otlpHttp: url(body.otlpHttp, ''), auditWebhook: url(body.auditWebhook, '/') };
}

async function reachable(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/healthz', endpoint), { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

/**
 * Polls until the trace is stored complete: all its spans, every stage of its audit events and,
 * for each link to another trace of the scenario, that trace's span (a link's target is looked up
 * when the tree is read). A settled tree is queryable and written again when more comes: the audit
 * stages of one request can come in different batches (in Kafka mode each event is a message of
 * its own) and the caller's trace settles on its own, so "some audit" is not yet the whole answer.
 */
async function waitForTree(
  endpoint: string,
  want: { traceId: string; spans: number; stages: string[]; traces: ReadonlySet<string> },
  timeoutMs: number,
): Promise<RequestTree> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not stored yet';
  while (Date.now() < deadline) {
    const res = await fetch(new URL(`/api/v1/traces/${want.traceId}`, endpoint));
    if (res.ok) {
      const tree = (await res.json()) as RequestTree;
      const have = treeAuditStages(tree.root);
      const stages = want.stages.filter((st) => have.has(st)).length;
      const links = treeNodes(tree.root).flatMap((n) => n.links ?? []).filter((l) => want.traces.has(l.traceId));
      const resolved = links.filter((l) => l.target).length;
      if (tree.spanCount >= want.spans && stages === want.stages.length && resolved === links.length) return tree;
      last = `${tree.spanCount}/${want.spans} spans, ${stages}/${want.stages.length} audit stages, ${resolved}/${links.length} links to other traces of the scenario resolved`;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new CliError(`trace ${want.traceId} was not stored complete within ${timeoutMs} ms (${last})`);
}
