// Shapes shared inside agent/security (and exported from its index).

/** A CA the secret manager can ask for certificates (Istio's security.Client). */
export interface CaClient {
  /**
   * Signs `csrPem` for `ttlSeconds`; resolves to the CA's chain elements: leaf, intermediates,
   * then the root bundle as the last element.
   */
  csrSign(csrPem: string, ttlSeconds: number): Promise<string[]>;
  /** Extra roots the provider knows of (Citadel: none). */
  getRootCertBundle(): Promise<string[]>;
  close(): void;
}

/** One secret as SDS serves it (Istio's security.SecretItem). PEM text throughout. */
export interface SecretItem {
  resourceName: string;
  certificateChain?: string;
  privateKey?: string;
  rootCert?: string;
  /** ms since the epoch; for the workload cert, local time right after the CA answered */
  createdTime: number;
  /** NotAfter of the first certificate (ms since the epoch), or 0 for roots */
  expireTime: number;
}

/** The well-known SDS resource names. */
export const WORKLOAD_KEY_CERT_RESOURCE = 'default';
export const ROOT_CERT_RESOURCE = 'ROOTCA';
export const FILE_CERT_PREFIX = 'file-cert:';
export const FILE_ROOT_PREFIX = 'file-root:';
