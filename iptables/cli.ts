// `istio-iptables` (also `pilot-agent istio-iptables`): placeholder until the iptables issue lands.
export async function runIstioIptables(_args: readonly string[]): Promise<number> {
  process.stderr.write('istio-iptables: not implemented yet\n');
  return 1;
}
