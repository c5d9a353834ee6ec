// Envoy's response flags bitmask (property `response.flags`) as the short codes access logs
// use, in bit order, "-" for none. The property API has no string form, so the table is kept
// here as in istio/proxy extensions/common/util.cc parseResponseFlag.

const CODES: string[] = [
  'LH', // 0x1 FailedLocalHealthCheck
  'UH', // 0x2 NoHealthyUpstream
  'UT', // 0x4 UpstreamRequestTimeout
  'LR', // 0x8 LocalReset
  'UR', // 0x10 UpstreamRemoteReset
  'UF', // 0x20 UpstreamConnectionFailure
  'UC', // 0x40 UpstreamConnectionTermination
  'UO', // 0x80 UpstreamOverflow
  'NR', // 0x100 NoRouteFound
  'DI', // 0x200 DelayInjected
  'FI', // 0x400 FaultInjected
  'RL', // 0x800 RateLimited
  'UAEX', // 0x1000 UnauthorizedExternalService
  'RLSE', // 0x2000 RateLimitServiceError
  'DC', // 0x4000 DownstreamConnectionTermination
  'URX', // 0x8000 UpstreamRetryLimitExceeded
  'SI', // 0x10000 StreamIdleTimeout
  'IH', // 0x20000 InvalidEnvoyRequestHeaders
  'DPE', // 0x40000 DownstreamProtocolError
  'UMSDR', // 0x80000 UpstreamMaxStreamDurationReached
  'RFCF', // 0x100000 ResponseFromCacheFilter
  'NFCF', // 0x200000 NoFilterConfigFound
  'DT', // 0x400000 DurationTimeout
  'UPE', // 0x800000 UpstreamProtocolError
  'NC', // 0x1000000 NoClusterFound
  'OM', // 0x2000000 OverloadManager
  'DF', // 0x4000000 DnsResolutionFailed
];

export function parseResponseFlag(flags: u64): string {
  let out = '';
  for (let i = 0; i < CODES.length; i++) {
    if ((flags & ((<u64>1) << (<u64>i))) != 0) out = out.length == 0 ? CODES[i] : out + ',' + CODES[i];
  }
  // Flags newer than this table: keep the information as the decimal mask.
  if (flags >= (<u64>1) << (<u64>CODES.length)) out = out.length == 0 ? flags.toString() : out + ',' + flags.toString();
  return out.length == 0 ? '-' : out;
}
