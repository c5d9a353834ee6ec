// The one error base of this repository. Every error a caller may branch on is an `AgentError`
// subclass with a stable `code` (for logs, tests and exit-code mapping) and its cause chained
// through `ErrorOptions`: `new XError('reading mesh config', { cause: err })` reads
// "reading mesh config: <the cause's message>", as Go's `fmt.Errorf("…: %w", err)` prints, and
// keeps `err` as `.cause` for whoever needs more than the text.
//
// `instanceof` must hold across bundles: `pilot-agent` loads istio-iptables from its own CommonJS
// bundle (packaging/bundle.mjs), so one source class can exist twice at run time, and esbuild's
// minifier renames classes. Each instance therefore carries the codes of its class chain under a
// registry symbol, and `instanceof` falls back to them when the prototype check fails.

const KINDS = Symbol.for('istio-agent-ts.error-kinds');

export interface AgentErrorOptions extends ErrorOptions {
  /** Overrides the class's code for this one error (a finer-grained reason). */
  code?: string;
  /** `false`: the message already says what the cause is; do not append its text. */
  appendCause?: boolean;
}

export class AgentError extends Error {
  /** The stable code of this class; each subclass declares its own. */
  static readonly code: string = 'AGENT_ERROR';

  /** This error's code: the class's, unless the thrower gave a finer one. */
  readonly code: string;

  constructor(message: string, options?: AgentErrorOptions) {
    const cause = options?.cause;
    const text = cause === undefined || options?.appendCause === false ? message : `${message}: ${errorMessage(cause)}`;
    super(text, cause === undefined ? undefined : { cause });
    const kinds: string[] = [];
    for (let c: unknown = new.target; typeof c === 'function' && c !== Error; c = Object.getPrototypeOf(c)) {
      if (Object.hasOwn(c, 'code')) kinds.push((c as typeof AgentError).code);
    }
    Object.defineProperty(this, KINDS, { value: kinds });
    this.code = options?.code ?? new.target.code;
    // The class's own name (the bundles keep names: packaging/bundle.mjs sets keepNames).
    this.name = new.target.name || this.code;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    if (Function.prototype[Symbol.hasInstance].call(this, value)) return true;
    if (typeof value !== 'object' || value === null) return false;
    const kinds = (value as { [KINDS]?: unknown })[KINDS];
    return Array.isArray(kinds) && kinds.includes(this.code);
  }
}

/** The message of any thrown value, for one-line logs. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The Node.js errno code of a thrown value (`ENOENT`, …), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof AgentError) return undefined; // its code is ours, not the system's
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
