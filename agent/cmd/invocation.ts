// What `pilot-agent proxy` was asked to do, as the command line parsed it: the value handed from
// the command tree (cli.ts) to the proxy run (proxy-command.ts).
import type { ProxyFlags } from '../../config/index.js';
import type { LogOptions } from '../../lib/log.js';

/** What `proxy` was asked to do, as parsed from the command line. */
export interface ProxyInvocation {
  typeArg: string | undefined;
  flags: ProxyFlags;
  logOptions: LogOptions;
  /** `FLAG: --name="value"` lines, logged at start */
  flagLines: string[];
}
