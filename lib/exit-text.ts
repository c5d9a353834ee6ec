// How Go's os/exec words a child's end (`exit status 1`, `signal: killed`): Istio logs it for
// Envoy's exit and for failed exec probes, and log pipelines match on it.

/** Go's names for the signals (syscall/zerrors_linux_amd64.go signals table). */
const GO_SIGNAL_TEXT: Partial<Record<NodeJS.Signals, string>> = {
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGFPE: 'floating point exception',
  SIGHUP: 'hangup',
  SIGILL: 'illegal instruction',
  SIGINT: 'interrupt',
  SIGKILL: 'killed',
  SIGPIPE: 'broken pipe',
  SIGQUIT: 'quit',
  SIGSEGV: 'segmentation fault',
  SIGTERM: 'terminated',
  SIGTRAP: 'trace/breakpoint trap',
  SIGUSR1: 'user defined signal 1',
  SIGUSR2: 'user defined signal 2',
};

/** `signal: <name>` for a signal, otherwise `exit status <code>` (ProcessState.String()). */
export function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `signal: ${GO_SIGNAL_TEXT[signal] ?? signal}`;
  return `exit status ${code}`;
}
