import type { Logger } from '@kube-correlate/telemetry';
import type { Component, Host } from './component.js';

/**
 * Makes a component safe to use carelessly: `start` twice starts once, `shutdown` twice stops
 * once (both calls resolve when it is stopped), `shutdown` without `start` releases what creating
 * it took, and `start` after `shutdown` is refused.
 */
export function guarded(c: Component): Component {
  let starting: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;
  return {
    start(host) {
      if (stopping) return Promise.reject(new Error('start after shutdown'));
      return (starting ??= c.start(host));
    },
    shutdown() {
      // A start still in flight finishes (or fails) first, so nothing is left half-open.
      return (stopping ??= (starting ?? Promise.resolve()).catch(() => undefined).then(() => c.shutdown()));
    },
  };
}

export interface LifecycleStage {
  /** For logs: receivers, processors, exporters, extensions, ... */
  name: string;
  components: Array<{ id: string; component: Component }>;
}

/**
 * Starts stages in the order given (downstream first: extensions, then exporters, processors,
 * receivers) and shuts them down in the reverse order (receivers first, so what they accepted drains
 * into the stages after them). A failed start shuts down everything and rethrows. Shutdown never
 * throws: a component that fails to stop is logged and the others still stop. Safe twice.
 */
export class Lifecycle {
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly stages: LifecycleStage[],
    private readonly logger: Logger,
  ) {
    for (const s of stages) for (const c of s.components) c.component = guarded(c.component);
  }

  async start(host: Host): Promise<void> {
    try {
      for (const stage of this.stages) {
        for (const { component } of stage.components) {
          if (this.stopping) throw new Error('shut down while starting');
          await component.start(host);
        }
      }
    } catch (err) {
      await this.shutdown();
      throw err;
    }
  }

  /** Every component, started or not, last stage first, each stage's last component first. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      for (const stage of [...this.stages].reverse()) {
        for (const { id, component } of [...stage.components].reverse()) {
          await component.shutdown().catch((err: unknown) => this.logger.error({ err, component: id }, `${stage.name}: ${id}: shutdown failed`));
        }
      }
    })();
    return this.stopping;
  }
}
