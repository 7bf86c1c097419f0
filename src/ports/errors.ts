/**
 * Errors raised by adapters behind ports. Activities translate the terminal ones into
 * non-retryable ApplicationFailures (see src/contracts/errors.ts); anything else is a transient
 * fault that Temporal retries.
 */
import { ErrorType } from '../contracts/errors';

export class ForgelineError extends Error {
  /** True when retrying cannot help (bad input, missing object, conflicting content). */
  readonly terminal: boolean;
  readonly type: ErrorType;
  constructor(type: ErrorType, message: string, terminal: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = type + 'Error';
    this.type = type;
    this.terminal = terminal;
  }
}

export class ArtifactNotFoundError extends ForgelineError {
  constructor(readonly uri: string, options?: { cause?: unknown }) {
    super(ErrorType.ArtifactNotFound, `artifact not found: ${uri}`, true, options);
  }
}

export class ArtifactIntegrityError extends ForgelineError {
  constructor(readonly uri: string, readonly expected: string, readonly actual: string) {
    super(ErrorType.ArtifactIntegrity, `sha256 mismatch for ${uri}: expected ${expected}, got ${actual}`, true);
  }
}

export class ArtifactConflictError extends ForgelineError {
  constructor(readonly uri: string, detail: string) {
    super(ErrorType.ArtifactConflict, `refusing to overwrite published version ${uri}: ${detail}`, true);
  }
}

export class ConfigError extends ForgelineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorType.InvalidConfig, message, true, options);
  }
}
