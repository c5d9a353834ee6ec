// Every environment variable istio-iptables reads, declared once. Most mirror a flag (the long
// name upper-cased, `-` → `_`) and set that flag's default; three are aliases read after them;
// five have no flag at all. Values are parsed in flags.ts with pflag's rules; the README table
// is generated from here.
import { bool, duration, int, str } from '../lib/env.js';

const CAPTURE = 'istio-iptables: capture (each sets the default of the flag of the same name)';
const MODE = 'istio-iptables: run mode';
const ENV_ONLY = 'istio-iptables: environment only (no flag)';

export const iptablesEnv = {
  INBOUND_CAPTURE_PORT: str('15006', '`-z`: port inbound traffic is redirected to.', CAPTURE),
  INBOUND_TUNNEL_PORT: str('15008', '`-e`: HBONE tunnel port, never captured inbound.', CAPTURE),
  PROXY_UID: str('', '`-u`: proxy UIDs (comma list) whose traffic is never captured; empty = UID of `$ENVOY_USER`, else 1337.', CAPTURE),
  PROXY_GID: str('', '`-g`: proxy GIDs (comma list); empty = the UID value.', CAPTURE),
  ISTIO_INBOUND_INTERCEPTION_MODE: str('', '`-m`: `REDIRECT` (also when empty) or `TPROXY`.', CAPTURE),
  ISTIO_INBOUND_PORTS: str('', '`-b`: inbound ports to capture; `*` = all; empty = no inbound capture.', CAPTURE),
  ISTIO_LOCAL_EXCLUDE_PORTS: str('', '`-d`: inbound ports left alone when `-b` is `*`.', CAPTURE),
  ISTIO_EXCLUDE_INTERFACES: str('', '`-c`: interfaces never captured, in or out.', CAPTURE),
  ISTIO_SERVICE_CIDR: str('', '`-i`: outbound destination CIDRs to capture; `*` = all.', CAPTURE),
  ISTIO_SERVICE_EXCLUDE_CIDR: str('', '`-x`: outbound destination CIDRs never captured.', CAPTURE),
  ISTIO_OUTBOUND_PORTS: str('', '`-q`: outbound TCP ports always captured.', CAPTURE),
  ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE: str('', '`-o`: outbound TCP and UDP ports never captured.', CAPTURE),
  KUBE_VIRT_INTERFACES: str('', '`-k`: interfaces whose incoming traffic is treated as outbound (KubeVirt).', CAPTURE),
  ISTIO_INBOUND_TPROXY_MARK: str('1337', '`-t`: fwmark used by TPROXY mode.', CAPTURE),
  ISTIO_INBOUND_TPROXY_ROUTE_TABLE: str('133', '`-r`: routing table used by TPROXY mode.', CAPTURE),
  REDIRECT_DNS: bool(false, '`--redirect-dns`: capture DNS (UDP and TCP port 53) to the agent on 15053.', CAPTURE),
  ISTIO_META_DNS_CAPTURE: bool(false, 'Alias of `REDIRECT_DNS`, read after it (proxyMetadata sets it in injected pods).', CAPTURE),
  CAPTURE_ALL_DNS: bool(false, '`--capture-all-dns`: capture all port-53 traffic, not only to the resolv.conf servers.', CAPTURE),
  DROP_INVALID: bool(false, '`--drop-invalid`: drop conntrack-INVALID packets.', CAPTURE),
  INVALID_DROP: bool(false, 'Alias of `DROP_INVALID`, read after it.', CAPTURE),
  DUAL_STACK: bool(false, '`--dual-stack`: enable IPv6 rules when the pod has any IPv6 address.', CAPTURE),
  ISTIO_DUAL_STACK: bool(false, 'Alias of `DUAL_STACK`, read after it.', CAPTURE),

  DRY_RUN: bool(false, '`-n`/`--dry-run`: print and record the commands, run nothing.', MODE),
  SKIP_RULE_APPLY: bool(false, '`--skip-rule-apply`: change nothing (used with `--run-validation`).', MODE),
  RUN_VALIDATION: bool(false, '`--run-validation`: check that capture works, exit 126 if not.', MODE),
  IPTABLES_PROBE_PORT: int(15002, '`--iptables-probe-port`: destination port the validation probe dials.', MODE),
  PROBE_TIMEOUT: duration(5000, '`--probe-timeout`: how long validation waits.', MODE),
  RECONCILE: bool(false, '`--reconcile`: replace existing Istio rules that differ.', MODE),
  CLEANUP_ONLY: bool(false, '`--cleanup-only`: remove the rules (and TPROXY routes) these flags would create.', MODE),
  FORCE_APPLY: bool(false, '`--force-apply`: apply even when equivalent rules exist.', MODE),
  FORCE_IPTABLES_BINARY: str('', '`--force-iptables-binary`: `legacy` or `nft`; empty = detect.', MODE),
  NETWORK_NAMESPACE: str('', '`--network-namespace`: netns path; only the xtables lock file in CNI mode (the caller must already be in the namespace).', MODE),
  CNI_MODE: bool(false, '`--cni-mode`: use a pod-scoped xtables lock (`XTABLES_LOCKFILE=<--network-namespace>`).', MODE),
  NATIVE_NFTABLES: bool(false, '`--native-nftables`: not implemented; rules are written with iptables-nft instead (warning).', MODE),

  ISTIO_OUTBOUND_OWNER_GROUPS: str('*', 'Groups (names or GIDs) whose outbound traffic is captured; `*` = all; at most 64.', ENV_ONLY),
  ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: str('', 'Groups whose outbound traffic is not captured (when the include list is `*`).', ENV_ONLY),
  ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: str('127.0.0.1/32', 'IPv4 loopback range never captured outbound (a 127/8 prefix, mask 8–32).', ENV_ONLY),
  ENVOY_USER: str('istio-proxy', 'User whose UID is the default `-u`.', ENV_ONLY),
  DRY_RUN_FILE_PATH: str('', 'In dry-run, file that receives the recorded commands (rewritten after each one).', ENV_ONLY),
};

export type IptablesEnvName = keyof typeof iptablesEnv;
