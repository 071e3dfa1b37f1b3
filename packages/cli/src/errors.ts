/** Exit codes of every `correlate` command (DESIGN.md): 0 found/ok, 1 not found, 2 usage or connection error. */
export const EXIT = { OK: 0, NOT_FOUND: 1, USAGE: 2 } as const;

/** An error that ends the command with a one-line reason and an exit code. */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(message: string, readonly exitCode: number = EXIT.USAGE) {
    super(message);
  }
}
