/**
 * Recognises TLS failures among socket errors, so that a refused certificate or a failed
 * TLS handshake closes with the reason 'tls-error' (and HL_ERR_TLS) instead of a generic
 * 'error', and an operator can tell a trust problem from a network one.
 */

import { errnoCode } from './classify.js';

/**
 * OpenSSL's certificate verification results as Node reports them in `err.code`
 * (X509_V_ERR_* without the prefix), plus Node's own host name check.
 */
const VERIFY_CODE =
  /CERT|CRL|^UNABLE_TO_|^INVALID_CA$|^INVALID_PURPOSE$|^PATH_LENGTH_EXCEEDED$|^HOSTNAME_MISMATCH$/;

/**
 * True for errors raised by TLS rather than by TCP: OpenSSL errors and alerts from the
 * peer (`ERR_SSL_*`, `ERR_OSSL_*`), Node's TLS errors (`ERR_TLS_*`, such as
 * ERR_TLS_CERT_ALTNAME_INVALID) and certificate verification failures
 * (DEPTH_ZERO_SELF_SIGNED_CERT, CERT_HAS_EXPIRED, UNABLE_TO_VERIFY_LEAF_SIGNATURE, ...).
 * A reset or EOF on a TLS socket is not a TLS error: it keeps its TCP classification.
 */
export function isTlsError(err: unknown): boolean {
  const code = errnoCode(err);
  if (code === undefined) return false;
  return (
    code.startsWith('ERR_SSL_') ||
    code.startsWith('ERR_OSSL_') ||
    code.startsWith('ERR_TLS_') ||
    VERIFY_CODE.test(code)
  );
}
