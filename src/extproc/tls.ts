/**
 * Server credentials of the ext_proc server: `--secure-serving` (default true) serves TLS
 * with a self-signed certificate generated at start, unless `--cert-path <dir>` gives
 * `tls.crt` and `tls.key` (llm-d `pkg/epp/server/runserver.go`, reference/epp.md §1.1).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { generateSelfSignedCert } from "./selfsigned.js";

/** Options of {@link extProcCredentials}. */
export interface TlsOptions {
  /** serve TLS (default true) */
  secureServing: boolean;
  /** folder with `tls.crt` and `tls.key` (PEM); none = a self-signed certificate */
  certPath?: string;
}

/** Credentials and where the certificate came from. */
export interface ExtProcCredentials {
  credentials: grpc.ServerCredentials;
  /** `insecure`, `self-signed` or the cert folder */
  source: string;
  /** the PEM certificate served (TLS only) */
  certPem?: string;
}

/**
 * Builds the ext_proc server credentials.
 * @throws Error naming the file when `tls.crt`/`tls.key` cannot be read
 */
export function extProcCredentials(opts: TlsOptions): ExtProcCredentials {
  if (!opts.secureServing)
    return { credentials: grpc.ServerCredentials.createInsecure(), source: "insecure" };
  let cert: string;
  let key: string;
  let source: string;
  if (opts.certPath) {
    const read = (f: string) => {
      try {
        return readFileSync(join(opts.certPath!, f), "utf8");
      } catch (e) {
        throw new Error(`--cert-path: cannot read ${join(opts.certPath!, f)}: ${(e as Error).message}`);
      }
    };
    cert = read("tls.crt");
    key = read("tls.key");
    source = opts.certPath;
  } else {
    ({ cert, key } = generateSelfSignedCert());
    source = "self-signed";
  }
  return {
    credentials: grpc.ServerCredentials.createSsl(
      null,
      [{ cert_chain: Buffer.from(cert), private_key: Buffer.from(key) }],
      false,
    ),
    source,
    certPem: cert,
  };
}
