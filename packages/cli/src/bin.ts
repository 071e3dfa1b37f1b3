#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { runCoverage } from './commands/coverage.js';
import { runDemo } from './commands/demo.js';
import { runQuery } from './commands/query.js';
import { runReplay } from './commands/replay.js';
import { runStart } from './commands/start.js';
import { parsePort, runWebhook } from './commands/webhook.js';
import { CliError, EXIT } from './errors.js';

// `correlate ... | head -1`: a reader that closed the pipe is a normal end, not an error with a stack.
// The process ends quietly with the exit code the command already has (EPIPE on stdout or stderr).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
}

const program = new Command('correlate')
  .description('kube-correlate: join kube-apiserver spans and audit events into request trees')
  // Options after a command name belong to that command (`correlate start --data X`), not to the
  // query options of the same name (`correlate --trace <id> --data X`).
  .enablePositionalOptions()
  .option('--trace <id>', 'print the request tree of a trace (32 hex characters)')
  .option('--audit-id <id>', 'print the request tree of an audit ID')
  .option('--objset <id>', 'print an object-set tree (root object, owned objects, the requests that touched each)')
  .option('--object <kind/namespace/name>', 'print the object-set tree of an object (kind/name when cluster-scoped)')
  .option('--json', 'print JSON instead of the text tree')
  .option('--endpoint <url>', 'query API of a running pipeline (http:// or https://)', 'http://127.0.0.1:4320')
  .option('--token-file <file>', 'with --endpoint: a file holding the query API\'s bearer token (extensions.store.auth)')
  .option('--token <token>', 'with --endpoint: the bearer token itself (visible to other users in ps: prefer --token-file)')
  .option('--cacert <file>', 'with an https:// --endpoint: the CA (PEM) that signed the query API\'s certificate')
  .option('--cert <file>', 'with an https:// --endpoint: a client certificate (PEM) for mutual TLS, with --key')
  .option('--key <file>', 'the private key (PEM) of --cert')
  .option('--data <dir>', 'read a store directory directly instead of the query API')
  .option('--jaeger <url>', 'read from Jaeger (query base URL, e.g. http://127.0.0.1:16686) through its HTTP API v3')
  .option('--lookback <duration>', 'with --jaeger: how far back --object and --objset search (e.g. 12h, 7d)', '7d')
  .option('--window <time|all>', 'with --objset/--object: the time window to show (a time inside it, e.g. 2026-12-02T16:30:00Z), or all; default the newest')
  .showHelpAfterError('(run correlate --help for usage)')
  .exitOverride()
  .action(async (opts: { trace?: string; auditId?: string; objset?: string; object?: string; json?: boolean; endpoint: string; data?: string; jaeger?: string; lookback?: string; window?: string; token?: string; tokenFile?: string; cacert?: string; cert?: string; key?: string }) => {
    if (!opts.trace && !opts.auditId && opts.objset === undefined && opts.object === undefined) {
      program.outputHelp();
      throw new CliError('give --trace <id>, --audit-id <id>, --objset <id>, --object <kind/namespace/name> or a command');
    }
    process.exitCode = await runQuery(opts);
  });

program
  .command('start')
  .description('run the pipeline (embedded by default: collector-config/embedded.yaml)')
  .option('--config <file>', 'collector config file')
  .option('--data <dir>', 'store directory (overrides extensions.store.directory)')
  .action(async (opts: { config?: string; data?: string }) => {
    process.exitCode = await runStart(opts);
  });

program
  .command('collector')
  .description('run a collector in Kafka mode (receivers -> Kafka), e.g. --config collector-config/kafka-collector.yaml')
  .requiredOption('--config <file>', 'collector config file')
  .action(async (opts: { config: string }) => {
    process.exitCode = await runStart(opts);
  });

program
  .command('correlator')
  .description('run a correlator instance in Kafka mode, e.g. --config collector-config/kafka-correlator.yaml')
  .requiredOption('--config <file>', 'correlator config file')
  .action(async (opts: { config: string }) => {
    process.exitCode = await runStart(opts);
  });

program
  .command('store')
  .description('fill the embedded store from otlp_correlated and serve the query API, e.g. --config collector-config/kafka-store.yaml')
  .requiredOption('--config <file>', 'store config file')
  .option('--data <dir>', 'store directory (overrides extensions.store.directory)')
  .action(async (opts: { config: string; data?: string }) => {
    process.exitCode = await runStart(opts);
  });

program
  .command('replay')
  .description('send recorded OTLP/JSON lines and audit log lines into a running pipeline')
  .option('--otlp <file>', 'OTLP/JSON ExportTraceServiceRequest per line')
  .option('--audit <file>', 'audit Event per line (as --audit-log-path writes)')
  .option('--otlp-endpoint <url>', 'OTLP/HTTP base URL (http:// or https://)', 'http://127.0.0.1:4318')
  .option('--audit-endpoint <url>', 'audit webhook URL (http:// or https://)', 'http://127.0.0.1:4319/')
  .addOption(new Option('--batch-size <n>', 'audit events per EventList').default(400).argParser((v) => parsePositive(v, '--batch-size')))
  .option('--token-file <file>', 'a file holding the receivers\' bearer token (their auth.authenticator)')
  .option('--token <token>', 'the bearer token itself (visible to other users in ps: prefer --token-file)')
  .option('--cacert <file>', 'with https:// endpoints: the CA (PEM) that signed the receivers\' certificates')
  .option('--cert <file>', 'with https:// endpoints: a client certificate (PEM) for mutual TLS, with --key')
  .option('--key <file>', 'the private key (PEM) of --cert')
  .option('--no-progress', 'no progress bar')
  .action(async (opts: { otlp?: string; audit?: string; otlpEndpoint: string; auditEndpoint: string; batchSize: number; progress: boolean; token?: string; tokenFile?: string; cacert?: string; cert?: string; key?: string }) => {
    const r = await runReplay(opts);
    process.stderr.write(`replayed ${r.otlpRequests} OTLP requests and ${r.auditEvents} audit events; ${r.refused} refused\n`);
    process.exitCode = r.refused ? EXIT.USAGE : EXIT.OK;
  });

program
  .command('demo')
  .description('replay the Deployment scenario into the running pipeline (or a temporary one) and print its tree')
  .option('--endpoint <url>', 'query API of a running pipeline (it says where its receivers listen)', 'http://127.0.0.1:4320')
  .option('--otlp-endpoint <url>', 'OTLP/HTTP base URL to send to (default: where the pipeline says)')
  .option('--audit-endpoint <url>', 'audit webhook URL to send to (default: where the pipeline says)')
  .option('--json', 'print JSON')
  .action(async (opts: { endpoint: string; otlpEndpoint?: string; auditEndpoint?: string; json?: boolean }) => {
    process.exitCode = await runDemo(opts);
  });

program
  .command('webhook')
  .description('serve the mutating admission webhook (trace.kubernetes.io/span and objsetid annotations) over HTTPS')
  .requiredOption('--cert <file>', 'serving certificate (PEM; reloaded when the file changes)')
  .requiredOption('--key <file>', 'private key (PEM)')
  .option('--client-ca <file>', "require a client certificate from these CAs (PEM; kube-apiserver's, see deploy/README.md); reloaded when the file changes")
  .addOption(new Option('--port <n>', 'HTTPS port').default(8443).argParser(parsePort))
  .option('--host <addr>', 'listen address', '0.0.0.0')
  .action(async (opts: { cert: string; key: string; clientCa?: string; port: number; host: string }) => {
    process.exitCode = await runWebhook(opts);
  });

program
  .command('coverage')
  .description('API usage and conformance coverage (APISnoop) of audit events against an OpenAPI spec: per endpoint, per client identity')
  .option('--spec <file>', 'OpenAPI v2 document (api/openapi-spec/swagger.json)')
  .option('--kubeconfig <file>', "fetch the spec from the cluster's /openapi/v2 instead")
  .option('--context <name>', 'with --kubeconfig: the context (default: current-context)')
  .option('--audit <file...>', 'audit log files (one Event per line, as --audit-log-path writes)')
  .option('--data <dir>', "read the audit events of the pipeline's store directory")
  .addOption(new Option('--format <format>', 'output format').choices(['table', 'csv', 'json', 'html']).default('table'))
  .option('--out <file>', 'write the report to a file instead of stdout')
  .option('--release <x.y.z>', "release to report (default: the spec's info.version)")
  .option('--ineligible <file>', "APISnoop's ineligible_endpoints.json (default: the list built in)")
  .option('--previous-spec <file>', 'OpenAPI v2 document of the previous release, for the "new conformance eligible endpoints" counts')
  .option('--progress', 'show a progress bar on stderr even when it is not a terminal')
  .option('--no-progress', 'no progress bar')
  .action(async (opts: { spec?: string; kubeconfig?: string; context?: string; audit?: string[]; data?: string; format: string; out?: string; release?: string; ineligible?: string; previousSpec?: string; progress?: boolean }) => {
    process.exitCode = await runCoverage(opts);
  });

function parsePositive(v: string, flag: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new CliError(`${flag} must be a positive integer, got "${v}"`);
  return n;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    // --help and --version are not errors; everything else commander reports is a usage error.
    process.exitCode = err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  } else if (err instanceof CliError) {
    process.stderr.write(`correlate: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`correlate: ${(err as Error).message}\n`);
    process.exitCode = EXIT.USAGE;
  }
}
