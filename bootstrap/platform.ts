// What the cloud platform tells the bootstrap: metadata (PLATFORM_METADATA), a locality
// fallback, instance labels (for non-Kubernetes hosts) and whether this is Kubernetes. Rendering
// only sees this data; detection (bootstrap/platform-detect.ts) is a separate, injectable I/O step.

export type PlatformName = 'gcp' | 'aws' | 'azure' | 'unknown';

export interface PlatformLocality {
  region?: string;
  zone?: string;
  subZone?: string;
}

export interface Platform {
  readonly name: PlatformName;
  /** Keys prefixed with the platform's short name (`gcp_project`, `aws_region`, …). */
  readonly metadata: Readonly<Record<string, string>>;
  readonly locality: PlatformLocality;
  /** Instance labels, merged into STATIC_LABELS only when not on Kubernetes. */
  readonly labels: Readonly<Record<string, string>>;
  readonly isKubernetes: boolean;
}

/** Istio's `Unknown` platform: nothing to add. */
export const UNKNOWN_PLATFORM: Platform = Object.freeze({
  name: 'unknown',
  metadata: Object.freeze({}),
  locality: Object.freeze({}),
  labels: Object.freeze({}),
  isKubernetes: true,
});
