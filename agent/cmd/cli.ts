// The `pilot-agent` command tree (Istio's cobra tree, pilot/cmd/pilot-agent/app/cmd.go) on
// commander. Exit codes as Istio: 255 for any command error, 1 for a fatal log, 0 for a clean
// proxy shutdown.
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseGoInt } from '../../lib/goparse.js';
import { configureLogging, FatalError, LogConfigError, scope, type LogOptions } from '../../lib/log.js';
import type { ProxyFlags } from '../../config/index.js';
import type { ProxyInvocation } from './invocation.js';
import { describeFlags, FlagError, normalizeArgv } from './flags.js';
import { AgentError } from '../../lib/errors.js';

const log = scope('default');

export const EXIT_ERROR = 255; // Go os.Exit(-1)
export const EXIT_FATAL = 1;

function goInt(flag: string) {
  return (v: string): number => {
    const n = parseGoInt(v);
    if (n === undefined) throw new InvalidArgumentError(`invalid argument ${JSON.stringify(v)} for "${flag}" flag: strconv.ParseInt: parsing ${JSON.stringify(v)}: invalid syntax`);
    return n;
  };
}

const DEFAULT_LOG_TARGETS: string[] = ['stdout'];

function boolFlag(cmd: Command, name: string, description: string, dflt: boolean): void {
  cmd.addOption(new Option(`--${name}`, description).default(dflt));
  cmd.addOption(new Option(`--no-${name}`).hideHelp());
}

/** A commander option that holds a string (or nothing: its default). */
function stringOpt(v: unknown, dflt: string): string {
  return typeof v === 'string' ? v : dflt;
}

function logOptionsFrom(root: Command): LogOptions {
  const o = root.opts<Record<string, unknown>>();
  return {
    outputLevels: stringOpt(o.log_output_level, ''),
    stackTraceLevels: stringOpt(o.log_stacktrace_level, 'default:none'),
    logCallers: stringOpt(o.log_caller, ''),
    asJson: Boolean(o.log_as_json),
    targets: (o.log_target as string[] | undefined) ?? ['stdout'],
  };
}

/** A command that cannot run as asked; `exitCode` is the status Istio exits with. */
class CommandFailure extends AgentError {
  static override readonly code: string = 'CMD_FAILURE';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function proxyFlagsFrom(cmd: Command): ProxyFlags {
  const o = cmd.opts<Record<string, unknown>>();
  return {
    domain: String(o.domain),
    meshConfig: String(o.meshConfig),
    stsPort: Number(o.stsPort),
    tokenManagerPlugin: String(o.tokenManagerPlugin),
    serviceCluster: String(o.serviceCluster),
    proxyLogLevel: String(o.proxyLogLevel),
    proxyComponentLogLevel: String(o.proxyComponentLogLevel),
    concurrency: Number(o.concurrency),
    templateFile: String(o.templateFile),
    outlierLogPath: String(o.outlierLogPath),
    profiling: Boolean(o.profiling),
  };
}

type ProxyHandler = (inv: ProxyInvocation) => Promise<number>;

const runProxyHandler: ProxyHandler = async (inv) => {
  configureLogging(inv.logOptions);
  const { runProxy } = await import('./proxy-command.js');
  return runProxy(inv);
};

function buildProgram(setExit: (code: number) => void, onProxy: ProxyHandler = runProxyHandler): Command {
  const program = new Command('pilot-agent')
    .description('Istio Pilot agent runs in the sidecar or gateway container and bootstraps Envoy.')
    .allowUnknownOption()
    .allowExcessArguments()
    .showHelpAfterError(false);

  program.addOption(
    new Option('--log_target <path>', 'The set of paths where to output the log. This can be any path as well as the special values stdout and stderr')
      .default(DEFAULT_LOG_TARGETS)
      .argParser((v: string, prev: string[]) => (prev === DEFAULT_LOG_TARGETS ? [v] : [...prev, v])),
  );
  boolFlag(program, 'log_as_json', 'Whether to format output as JSON or in plain console-friendly format', false);
  program.option('--log_output_level <levels>', 'Comma-separated minimum per-scope logging level of messages to output, in the form of <scope>:<level>,<scope>:<level>,...', '');
  program.option('--log_stacktrace_level <levels>', 'Comma-separated minimum per-scope logging level at which stack traces are captured', 'default:none');
  program.option('--log_caller <scopes>', 'Comma-separated list of scopes for which to include caller information', '');
  program.option('--vklog <level>', 'number for the log level verbosity (accepted and ignored)', '0');

  // --- proxy ---
  const proxy = program
    .command('proxy')
    .argument('[type]', 'proxy type: sidecar (default), router, waypoint, ztunnel, agentgateway')
    .description('XDS proxy agent')
    .allowUnknownOption()
    .allowExcessArguments();
  proxy.option('--domain <domain>', 'DNS domain suffix. If not provided uses ${POD_NAMESPACE}.svc.cluster.local', '');
  proxy.option(
    '--meshConfig <file>',
    'File name for Istio mesh configuration. If not specified, a default mesh will be used. This may be overridden by PROXY_CONFIG environment variable or proxy.istio.io/config annotation.',
    './etc/istio/config/mesh',
  );
  proxy.option('--stsPort <port>', 'HTTP Port on which to serve Security Token Service (STS). If zero, STS service will not be provided.', goInt('--stsPort'), 0);
  proxy.option('--tokenManagerPlugin <name>', 'Token provider specific plugin name.', 'GoogleTokenExchange');
  proxy.option('--serviceCluster <name>', 'Service cluster', 'istio-proxy');
  proxy.option(
    '--proxyLogLevel <level>',
    "The log level used to start the Envoy proxy (choose from {trace, debug, info, warning, error, critical, off}).Level may also include one or more scopes, such as 'info,misc:error,upstream:debug'",
    'warning',
  );
  proxy.option('--concurrency <n>', 'number of worker threads to run', goInt('--concurrency'), 0);
  proxy.option('--proxyComponentLogLevel <levels>', 'The component log level used to start the Envoy proxy. Deprecated, use proxyLogLevel instead', '');
  proxy.option('--templateFile <file>', 'Go template bootstrap config', '');
  proxy.option('--outlierLogPath <path>', 'The log path for outlier detection', '');
  boolFlag(proxy, 'profiling', 'Enable profiling via web interface host:port/debug/pprof/.', true);
  proxy.action(async (typeArg: string | undefined) => {
    setExit(await onProxy({ typeArg, flags: proxyFlagsFrom(proxy), logOptions: logOptionsFrom(program), flagLines: describeFlags([program, proxy]) }));
  });

  // --- request ---
  program
    .command('request')
    .argument('[args...]', '<method> <path> [<body>]')
    .description('Makes an HTTP request to the Envoy admin API')
    .option('--debug-port <port>', 'Set the port to make a local request to. The default points to the Envoy admin API.', goInt('--debug-port'), 15000)
    .action(async (args: string[], opts: { debugPort: number }) => {
      if (args.length < 2) throw new CommandFailure(`requires at least 2 arg(s), only received ${args.length}`, EXIT_ERROR);
      const { doRequest } = await import('./request.js');
      const body = await doRequest({ method: args[0]!, path: args[1]!, body: args[2] ?? '', debugPort: opts.debugPort });
      process.stdout.write(`${body}\n`);
      setExit(0);
    });

  // --- wait ---
  program
    .command('wait')
    .description('Waits until the Envoy proxy is ready')
    .option('--timeoutSeconds <n>', 'maximum number of seconds to wait for Envoy to be ready', goInt('--timeoutSeconds'), 60)
    .option('--requestTimeoutMillis <n>', 'number of milliseconds to wait for response', goInt('--requestTimeoutMillis'), 500)
    .option('--periodMillis <n>', 'number of milliseconds to wait between attempts', goInt('--periodMillis'), 500)
    .option('--url <url>', 'URL to use in requests', 'http://localhost:15021/healthz/ready')
    .action(async (opts: { timeoutSeconds: number; requestTimeoutMillis: number; periodMillis: number; url: string }) => {
      const { waitForReady } = await import('./wait.js');
      log.info(`Waiting for Envoy proxy to be ready (timeout: ${opts.timeoutSeconds} seconds)...`);
      await waitForReady(opts, () => log.info('Envoy is ready!'));
      setExit(0);
    });

  // --- version ---
  program
    .command('version')
    .description('Prints out build version information')
    .option('-s, --short', 'Use --short=false to generate full version information', false)
    .addOption(new Option('--no-short').hideHelp())
    .option('-o, --output <format>', "One of 'yaml' or 'json'.", '')
    .action(async (opts: { short: boolean; output: string }) => {
      const { versionText } = await import('../../config/version.js');
      process.stdout.write(`${await versionText(opts.short, opts.output)}\n`);
      setExit(0);
    });

  // --- collateral (hidden; always fails in the agent build, as Istio's) ---
  program
    .command('collateral', { hidden: true })
    .allowUnknownOption()
    .allowExcessArguments()
    .action(() => {
      throw new CommandFailure('this build is not compiled with collateral support', EXIT_ERROR);
    });

  // `istio-iptables` is dispatched before commander (main.ts); listed here for help output.
  program.command('istio-iptables').description('Set up iptables rules for Istio Sidecar');
  return program;
}

export interface CliIo {
  stderr: (s: string) => void;
}

function quietly(program: Command, io: CliIo): void {
  program.exitOverride();
  program.configureOutput({ writeErr: io.stderr, outputError: (s, write) => write(s) });
  for (const c of program.commands) {
    c.exitOverride();
    c.configureOutput({ writeErr: io.stderr, outputError: (s, write) => write(s) });
  }
}

const defaultIo: CliIo = { stderr: (s) => void process.stderr.write(s) };

/**
 * Runs the agent's command tree with argv (without node and script) and returns the exit status;
 * `istio-iptables` command lines never get here (main.ts hands them over first).
 */
export async function runCli(args: readonly string[], io: CliIo = defaultIo): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => (code = c));
  quietly(program, io);
  try {
    await program.parseAsync(normalizeArgv(program, args), { from: 'user' });
    return code;
  } catch (err) {
    return reportError(err, io);
  }
}

/**
 * Parses a `proxy …` command line exactly as runCli would, without running the agent: the
 * injected pod specs are checked through this.
 */
export async function parseProxyCommandLine(args: readonly string[], io: CliIo = defaultIo): Promise<ProxyInvocation> {
  let captured: ProxyInvocation | undefined;
  const program = buildProgram(
    () => {},
    async (inv) => {
      captured = inv;
      return 0;
    },
  );
  quietly(program, io);
  await program.parseAsync(normalizeArgv(program, args), { from: 'user' });
  if (!captured) throw new Error(`not a proxy command line: ${args.join(' ')}`);
  return captured;
}

function reportError(err: unknown, io: CliIo): number {
  if (err instanceof CommanderError) {
    // --help and --version exit 0; usage errors exit like any cobra error.
    if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.exitCode === 0) return 0;
    return EXIT_ERROR;
  }
  if (err instanceof FatalError) return EXIT_FATAL; // already logged at fatal level
  if (err instanceof FlagError || err instanceof InvalidArgumentError) {
    io.stderr(`Error: ${err.message}\n`);
    return EXIT_ERROR;
  }
  if (err instanceof LogConfigError) {
    io.stderr(`Error: ${err.message}\n`);
    return EXIT_ERROR;
  }
  if (err instanceof CommandFailure) {
    log.error(err.message);
    return err.exitCode;
  }
  const e = err as Error;
  log.error(e?.message ?? String(err));
  if (e?.stack && !('name' in e && /Error$/.test(e.name) && e.name !== 'Error')) log.debug(e.stack);
  return EXIT_ERROR;
}
