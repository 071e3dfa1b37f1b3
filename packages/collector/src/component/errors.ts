/**
 * The pipeline's one error tree. Whether a failure is worth retrying is carried by its type, and
 * status.ts turns it into what each wire says: a receiver answers a `RetryableError` with gRPC
 * UNAVAILABLE (with RetryInfo) / HTTP 503 with Retry-After, and a `PermanentError` with its status
 * (INVALID_ARGUMENT / 400 unless it says otherwise); an exporter retries the first and drops and
 * counts the second. Any other error is a bug: INTERNAL / 500, logged.
 */
export abstract class PipelineError extends Error {
  abstract readonly retryable: boolean;
  /** A short, low-cardinality label for metrics (`reason`) and logs, e.g. `unavailable`, `too_large`. */
  readonly reason: string;
  /** Attempts a retrying sender made before it gave up with this error (0 when nothing retried). */
  attempts = 0;

  protected constructor(message: string, reason: string, cause: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.reason = reason;
  }
}

export interface RetryableErrorOptions {
  /** Metric label. Default `unavailable`. */
  reason?: string;
  cause?: unknown;
}

/** "Not now": the same data may succeed later (backpressure, a destination that is down or slow). */
export class RetryableError extends PipelineError {
  override readonly name = 'RetryableError';
  readonly retryable = true;

  constructor(
    message: string,
    /**
     * How long the sender should wait before trying again, in ms: what a receiver puts in
     * Retry-After and RetryInfo, and what a backend asked an exporter for. Undefined: the
     * sender's own backoff decides (a receiver then says 1 s).
     */
    readonly delayMs?: number,
    opts: RetryableErrorOptions = {},
  ) {
    super(message, opts.reason ?? 'unavailable', opts.cause);
  }
}

export interface PermanentErrorOptions {
  /** Metric label. Default `invalid_argument`. */
  reason?: string;
  /**
   * The HTTP status a receiver answers (the gRPC code follows from status.ts's table): 400 by
   * default; 413 for a body over the limit, 415 for a media type or encoding we do not read, 404
   * and 405 for a wrong path or method.
   */
  http?: number;
  cause?: unknown;
}

/** "Never": the same data will fail again (malformed, too large, refused by the backend for good). */
export class PermanentError extends PipelineError {
  override readonly name = 'PermanentError';
  readonly retryable = false;
  readonly http: number;

  constructor(message: string, opts: PermanentErrorOptions = {}) {
    super(message, opts.reason ?? 'invalid_argument', opts.cause);
    this.http = opts.http ?? 400;
  }
}
