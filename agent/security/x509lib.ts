// Lazy loader for @peculiar/x509 (CSR building, certificate issuing in the local CA). Its DI
// container (tsyringe) needs the reflect-metadata polyfill loaded first, and it must be told to
// use Node's WebCrypto. ~140 ms cold, so it is only imported when a CSR is first needed.
import { webcrypto } from 'node:crypto';

export type X509Lib = typeof import('@peculiar/x509');

let lib: Promise<X509Lib> | undefined;

export function loadX509(): Promise<X509Lib> {
  lib ??= (async () => {
    await import('reflect-metadata');
    const x509 = await import('@peculiar/x509');
    x509.cryptoProvider.set(webcrypto as never);
    return x509;
  })();
  return lib;
}
