// One error type for everything that stops a bootstrap from being produced: bad inputs (an
// address without a port, a metadata value of the wrong type, an unknown tracer), a custom
// template we do not render, or a failed write. The message names the offending setting.
import { AgentError } from '../lib/errors.js';
export class BootstrapError extends AgentError {
  static override readonly code: string = 'BOOTSTRAP';
}
