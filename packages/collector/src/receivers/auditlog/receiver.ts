import { AuditLogFollower, readAuditLogFile, type AuditEvent, type AuditEventError } from '@kube-correlate/audit';
import type { Logger, PipelineMetrics } from '@kube-correlate/telemetry';
import type { AuditConsumer } from '../../component/component.js';
import { auditReasonLabel, ReceiverCounters } from '../../internal/receiver-counters.js';

export interface AuditLogReceiverOptions {
  name: string;
  include: string[];
  startAt: 'beginning' | 'end';
  /** Follow the files across appends and rotation (true), or read each once (false). */
  follow: boolean;
  pollIntervalMs: number;
  consumer: AuditConsumer;
  metrics: PipelineMetrics;
  logger: Logger;
}

/**
 * Audit log files as kube-apiserver's `--audit-log-path` writes them (one JSON Event per line).
 * A bad line is logged with its file and line number, counted, and skipped; the rest is read.
 */
export class AuditLogReceiver {
  private followers: AuditLogFollower[] = [];
  private reads: Promise<unknown>[] = [];
  private readonly abort = new AbortController();
  private readonly counters: ReceiverCounters;

  constructor(private readonly opts: AuditLogReceiverOptions) {
    this.counters = new ReceiverCounters(opts.metrics, opts.name);
  }

  async start(): Promise<void> {
    const { name, include, follow, logger } = this.opts;
    const onEvent = async (e: AuditEvent) => {
      await this.opts.consumer.consumeAuditEvents([e]);
      this.counters.accepted('audit_events', 1);
    };
    const onError = (err: AuditEventError & { path: string }) => {
      this.counters.refusedItems(auditReasonLabel(err.reason), 1);
      logger.warn({ receiver: name, path: err.path, line: err.index }, `${err.path}:${err.index}: ${err.reason}`);
    };
    for (const path of include) {
      if (follow) {
        const f = new AuditLogFollower({ path, startAt: this.opts.startAt, pollIntervalMs: this.opts.pollIntervalMs, onEvent, onError });
        await f.start();
        this.followers.push(f);
      } else {
        this.reads.push(
          readAuditLogFile(path, { onEvent, onError }, { signal: this.abort.signal }).then(
            (r) => logger.info({ receiver: name, path, ...r }, 'audit log file read'),
            (err: unknown) => {
              this.counters.refusedItems('read_error', 1);
              logger.error({ receiver: name, path, err }, `cannot read audit log ${path}: ${(err as Error).message}`);
            },
          ),
        );
      }
      logger.info({ receiver: name, path, follow }, 'audit log receiver started');
    }
  }

  /** Resolves when one-shot reads are complete (tests, replay). */
  async done(): Promise<void> {
    await Promise.all(this.reads);
  }

  async shutdown(): Promise<void> {
    this.abort.abort();
    await Promise.all([...this.followers.map((f) => f.stop()), ...this.reads]);
    this.followers = [];
    this.reads = [];
  }
}
