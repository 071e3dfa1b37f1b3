import type { Logger } from '@kube-correlate/telemetry';
import { EXIT } from '../errors.js';

export interface UntilSignalOptions {
  /** Logged on the first SIGINT/SIGTERM, before `shutdown` runs. */
  stopping: string;
  /** Logged on a second signal, which exits 130 at once. */
  secondSignal: string;
  shutdown: () => Promise<unknown>;
  /** Runs once the handlers are in place: announce from here, so that a signal right after the announcement stops gracefully. */
  ready?: () => void;
}

/**
 * How a long-running command (`start`, `collector`, `webhook`, ...) ends: the first SIGINT/SIGTERM
 * runs `shutdown` and resolves with 0 (1 if it failed); a second one exits 130 at once.
 */
export function runUntilSignal(logger: Logger, o: UntilSignalOptions): Promise<number> {
  return new Promise((resolve) => {
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals) => {
      if (++signals > 1) {
        logger.warn({ signal: sig }, o.secondSignal);
        process.exit(130);
      }
      logger.info({ signal: sig }, o.stopping);
      o.shutdown().then(
        () => resolve(EXIT.OK),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    o.ready?.();
  });
}
