import { findComponent, loadConfigFile, Pipeline, withComponentConfig, type CollectorConfig } from '@kube-correlate/collector';
import { createLogger } from '@kube-correlate/telemetry';
import { DEFAULT_CONFIG } from '../paths.js';
import { runUntilSignal } from './until-signal.js';

export interface StartOptions {
  config?: string;
  /** Overrides extensions.store.directory. */
  data?: string;
}

/** Loads a collector config (the embedded one by default) and applies command-line overrides. */
export function loadStartConfig(opts: StartOptions): CollectorConfig {
  const config = loadConfigFile(opts.config ?? DEFAULT_CONFIG);
  const data = opts.data;
  if (!data) return config;
  const withData = withComponentConfig(config, 'extensions', 'store', (store) => ({ ...store, directory: data }));
  if (!withData) throw new Error(`${config.source}: --data given but the config has no store extension`);
  return withData;
}

/**
 * `correlate start`: runs the pipeline until SIGINT/SIGTERM, then drains what is in flight into
 * the store. A second signal exits at once.
 */
export async function runStart(opts: StartOptions): Promise<number> {
  const config = loadStartConfig(opts);
  const logger = createLogger({ name: 'correlate', level: config.logLevel });
  const pipeline = new Pipeline({ config, logger });
  await pipeline.start();
  const a = pipeline.addresses;
  // https:// where the listener has tls (the banner says how to reach each one).
  const otlp = findComponent(config, 'receivers', 'otlp')?.config.protocols;
  const scheme = (tls: unknown) => (tls ? 'https' : 'http');
  const httpScheme = scheme(otlp?.http?.tls);
  const auditScheme = scheme(findComponent(config, 'receivers', 'k8saudit')?.config.tls);
  const queryScheme = scheme(findComponent(config, 'extensions', 'store')?.config.tls);
  logger.info({ config: config.source, ...a }, 'kube-correlate pipeline started');
  return runUntilSignal(logger, {
    stopping: 'shutting down: draining in-flight traces into the store',
    secondSignal: 'second signal: exiting without draining',
    shutdown: () => pipeline.shutdown(),
    ready: () => {
      process.stderr.write(
        `kube-correlate is running (config ${config.source})\n` +
          (a.otlpGrpc ? `  OTLP/gRPC      ${a.otlpGrpc}${otlp?.grpc?.tls ? ' (TLS)' : ''}\n` : '') +
          (a.otlpHttp ? `  OTLP/HTTP      ${httpScheme}://${a.otlpHttp}/v1/traces\n` : '') +
          (a.auditWebhook ? `  audit webhook  ${auditScheme}://${a.auditWebhook}/\n` : '') +
          (a.query ? `  query API      ${queryScheme}://${a.query}  (metrics: /metrics)\n` : '') +
          (a.metrics ? `  metrics        http://${a.metrics}/metrics\n` : '') +
          `Press Ctrl-C to stop.\n`,
      );
    },
  });
}
