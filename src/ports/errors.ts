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

/**
 * A registry version or alias is held by someone else: a racing release won, or a move's
 * precondition no longer holds. Terminal (retrying the same write cannot succeed); the message
 * names the model, the alias or version, and the holder.
 */
export class RegistryConflictError extends ForgelineError {
  constructor(
    readonly model: string,
    /** What is contended, e.g. `alias candidate` or `version adapter@3f2a9c1b7d00`. */
    readonly subject: string,
    detail: string,
  ) {
    super(ErrorType.RegistryConflict, `registry conflict on ${model} ${subject}: ${detail}`, true);
  }
}

export class ConfigError extends ForgelineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(ErrorType.InvalidConfig, message, true, options);
  }
}
