// Which program a pilot-agent command line is for, decided without loading commander: the
// istio-init container runs `pilot-agent istio-iptables …`, whose start-up should not pay for the
// agent's command tree.

/** Global flags that take a value, so the positional scan can skip over them. */
const GLOBAL_VALUE_FLAGS = ['--log_target', '--log_output_level', '--log_stacktrace_level', '--log_caller', '--vklog'];

/** First positional argument, skipping global flags (and their values); -1 when there is none. */
export function firstPositional(args: readonly string[]): number {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return i + 1 < args.length ? i + 1 : -1;
    if (a.startsWith('-')) {
      if (!a.includes('=') && GLOBAL_VALUE_FLAGS.includes(a)) i++;
      continue;
    }
    return i;
  }
  return -1;
}

/** For `[globals] istio-iptables [flags]`: the arguments istio-iptables gets; otherwise undefined. */
export function istioIptablesArgs(args: readonly string[]): string[] | undefined {
  const at = firstPositional(args);
  if (at < 0 || args[at] !== 'istio-iptables') return undefined;
  return [...args.slice(0, at), ...args.slice(at + 1)];
}
