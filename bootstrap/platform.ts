// What the cloud platform tells the bootstrap: metadata (PLATFORM_METADATA), a locality
// fallback, instance labels (for non-Kubernetes hosts) and whether this is Kubernetes. Rendering
// only sees this data. Istio's counterpart is pkg/bootstrap/platform (Discover in discovery.go,
// gcp.go, aws.go, azure.go); here platformFromEnv reads the environment only, and a caller may
// pass its own Platform (BootstrapRuntime in write.ts).

export type PlatformName = 'gcp' | 'aws' | 'azure' | 'unknown';

export interface PlatformLocality {
  region?: string | undefined;
  zone?: string | undefined;
  subZone?: string | undefined;
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

/** The environment variables platform detection reads. */
export interface PlatformEnv {
  CLOUD_PLATFORM: string;
  GCP_METADATA: string;
  GCP_ZONE: string;
  GCP_QUOTA_PROJECT: string;
}

/**
 * The platform as far as the environment tells it, without network I/O.
 *
 * Istio probes the GCE, EC2 and Azure metadata servers at start (up to 5 s) unless
 * CLOUD_PLATFORM says otherwise. We keep the start path free of that: on Kubernetes istiod sets
 * locality from the node's topology labels anyway, and the only other consumers of
 * PLATFORM_METADATA (GCP project for Stackdriver, the GKE cluster URL) are given by
 * GCP_METADATA, which managed installs set. So: CLOUD_PLATFORM=none → Unknown; GCP_METADATA
 * (`PROJECT_ID|PROJECT_NUMBER|CLUSTER_NAME|CLUSTER_LOCATION`) → GCP with Istio's keys and the
 * GCP_ZONE locality; anything else → Unknown. Callers that want probing can pass their own
 * Platform in BootstrapRuntime.
 */
export function platformFromEnv(env: PlatformEnv, warn: (message: string) => void = () => {}): Platform {
  const cloud = env.CLOUD_PLATFORM.toLowerCase();
  if (cloud === 'none' || (cloud !== '' && cloud !== 'gcp')) return UNKNOWN_PLATFORM;
  if (env.GCP_METADATA === '') return UNKNOWN_PLATFORM;
  const parts = env.GCP_METADATA.split('|');
  if (parts.length !== 4) {
    warn(`GCP_METADATA ${JSON.stringify(env.GCP_METADATA)} is not PROJECT_ID|PROJECT_NUMBER|CLUSTER_NAME|CLUSTER_LOCATION; ignoring it`);
    return UNKNOWN_PLATFORM;
  }
  const [project, number, cluster, location] = parts as [string, string, string, string];
  const metadata: Record<string, string> = {};
  const set = (k: string, v: string) => {
    if (v !== '') metadata[k] = v;
  };
  set('gcp_project', project);
  set('gcp_project_number', number);
  set('gcp_gke_cluster_name', cluster);
  set('gcp_location', location);
  if (project && location && cluster) metadata.gcp_gke_cluster_url = `https://container.googleapis.com/v1/projects/${project}/locations/${location}/clusters/${cluster}`;
  set('gcp_quota_project', env.GCP_QUOTA_PROJECT);
  set('gcp_zone', env.GCP_ZONE);
  const zone = env.GCP_ZONE;
  const locality: PlatformLocality = zone ? { zone, region: zone.includes('-') ? zone.slice(0, zone.lastIndexOf('-')) : zone } : {};
  return { name: 'gcp', metadata, locality, labels: {}, isKubernetes: true };
}
