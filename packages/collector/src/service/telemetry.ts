import { createServer, type Server } from 'node:http';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { Component, Host } from '../component/component.js';
import { closeHttp, listenHttp } from '../internal/http.js';

/**
 * `service.telemetry.metrics.address`: /metrics and /healthz for processes without a query API
 * (collector, correlator). Started first and stopped last, so it reports on the whole run.
 */
export class TelemetryServer implements Component {
  private server: Server | undefined;

  constructor(
    private readonly address: string,
    private readonly metrics: PipelineMetrics,
    private readonly logger: Logger,
  ) {}

  async start(host: Host): Promise<void> {
    const { metrics } = this;
    this.server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        void metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': metrics.registry.contentType });
          res.end(text);
        });
      } else if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"status":"ok"}\n');
      } else {
        res.writeHead(404, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `no route ${path}` }) + '\n');
      }
    });
    const bound = await listenHttp(this.server, this.address, 'metrics');
    host.reportAddress('metrics', bound);
    this.logger.info({ endpoint: bound }, '/metrics listening');
  }

  async shutdown(): Promise<void> {
    if (this.server) await closeHttp(this.server, 1000);
  }
}
