/**
 * TLS material for servers that serve HTTPS by default (llm-d's sidecar `--secure-proxy`,
 * the EPP's `--secure-serving`): certificates from a directory (`tls.crt`, `tls.key`, as
 * llm-d's `--cert-path`), or a self-signed certificate generated at start with the system's
 * `openssl` (Node has no X.509 generator). Without openssl the caller gets a clear error.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM key and certificate. */
export interface TlsMaterial {
  key: Buffer;
  cert: Buffer;
}

/**
 * Reads `tls.crt` and `tls.key` from `certPath`.
 * @throws Error naming the missing file
 */
export function loadCertDir(certPath: string): TlsMaterial {
  return { cert: readFileSync(join(certPath, "tls.crt")), key: readFileSync(join(certPath, "tls.key")) };
}

/**
 * A fresh self-signed certificate (RSA 2048, 365 days, CN and SAN `localhost`, `127.0.0.1`).
 * @throws Error when `openssl` is not available
 */
export function selfSigned(commonName = "llmd"): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), "llmd-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "365",
        "-subj",
        `/CN=${commonName}`,
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        join(dir, "tls.key"),
        "-out",
        join(dir, "tls.crt"),
      ],
      { stdio: "ignore" },
    );
    return loadCertDir(dir);
  } catch (e) {
    throw new Error(
      `cannot generate a self-signed certificate (is openssl installed?): ${(e as Error).message}; give --cert-path with tls.crt/tls.key, or disable TLS`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
