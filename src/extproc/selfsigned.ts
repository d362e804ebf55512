/**
 * A self-signed X.509 v3 certificate generated in process with `node:crypto` (ECDSA P-256,
 * SHA-256), no dependency and no `openssl` binary: the EPP's `--secure-serving` default when no
 * `--cert-path` is given (llm-d `pkg/epp/server/runserver.go`, reference/epp.md §1.1).
 *
 * The DER is written by hand (RFC 5280 §4.1): TBSCertificate {version v3, serial, signature
 * ecdsa-with-SHA256, issuer = subject = CN, validity, SubjectPublicKeyInfo, extensions
 * subjectAltName (DNS names + IP addresses) and basicConstraints CA:false}.
 */
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { isIPv4 } from "node:net";

/** A PEM certificate and its PEM private key. */
export interface SelfSignedCert {
  /** `-----BEGIN CERTIFICATE-----` PEM */
  cert: string;
  /** PKCS#8 `-----BEGIN PRIVATE KEY-----` PEM */
  key: string;
}

/** Options of {@link generateSelfSignedCert}. */
export interface SelfSignedOptions {
  /** subject/issuer common name (default `llmd-epp`) */
  commonName?: string;
  /** subjectAltName DNS names (default `localhost`) */
  dnsNames?: string[];
  /** subjectAltName IPv4 addresses (default `127.0.0.1`) */
  ipAddresses?: string[];
  /** validity, days from now (default 3650) */
  days?: number;
  /** start of validity, ms since the epoch (default now − 1 h, for clock skew) */
  notBefore?: number;
}

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), len(content.length), content]);
}
const seq = (...parts: Buffer[]) => tlv(0x30, Buffer.concat(parts));
const set = (...parts: Buffer[]) => tlv(0x31, Buffer.concat(parts));
function integer(bytes: Buffer): Buffer {
  let b = bytes;
  while (b.length > 1 && b[0] === 0 && (b[1]! & 0x80) === 0) b = b.subarray(1);
  if (b[0]! & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return tlv(0x02, b);
}
function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const out: number[] = [40 * parts[0]! + parts[1]!];
  for (const p of parts.slice(2)) {
    const stack: number[] = [p & 0x7f];
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) stack.unshift((v & 0x7f) | 0x80);
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(ms: number): Buffer {
  const d = new Date(ms);
  const y = d.getUTCFullYear();
  const p = (n: number) => String(n).padStart(2, "0");
  const body = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  // UTCTime for 1950–2049, GeneralizedTime after (RFC 5280 §4.1.2.5)
  return y < 2050 ? tlv(0x17, Buffer.from(`${p(y % 100)}${body}`)) : tlv(0x18, Buffer.from(`${y}${body}`));
}
const OID_CN = "2.5.4.3";
const OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2";
const OID_SAN = "2.5.29.17";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";

/**
 * Generates a fresh key pair and a self-signed certificate for it.
 * @returns PEM certificate and key, ready for `grpc.ServerCredentials.createSsl`
 * @throws Error for an IP address that is not IPv4
 */
export function generateSelfSignedCert(opts: SelfSignedOptions = {}): SelfSignedCert {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const cn = opts.commonName ?? "llmd-epp";
  const name = seq(set(seq(oid(OID_CN), tlv(0x0c, Buffer.from(cn, "utf8")))));
  const notBefore = opts.notBefore ?? Date.now() - 3600_000;
  const notAfter = notBefore + (opts.days ?? 3650) * 86_400_000;
  const sigAlg = seq(oid(OID_ECDSA_SHA256));
  const names: Buffer[] = [];
  for (const dns of opts.dnsNames ?? ["localhost"]) names.push(tlv(0x82, Buffer.from(dns, "ascii")));
  for (const ip of opts.ipAddresses ?? ["127.0.0.1"]) {
    if (!isIPv4(ip)) throw new Error(`self-signed certificate: ${ip} is not an IPv4 address`);
    names.push(tlv(0x87, Buffer.from(ip.split(".").map(Number))));
  }
  const extensions = tlv(
    0xa3,
    seq(
      seq(oid(OID_BASIC_CONSTRAINTS), tlv(0x01, Buffer.from([0xff])), tlv(0x04, seq())),
      seq(oid(OID_SAN), tlv(0x04, seq(...names))),
    ),
  );
  const serial = randomBytes(16);
  serial[0] = serial[0]! & 0x7f;
  const tbs = seq(
    tlv(0xa0, integer(Buffer.from([2]))),
    integer(serial),
    sigAlg,
    name,
    seq(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    extensions,
  );
  const signature = sign("sha256", tbs, { key: privateKey, dsaEncoding: "der" });
  const der = seq(tbs, sigAlg, tlv(0x03, Buffer.concat([Buffer.from([0]), signature])));
  const b64 = der
    .toString("base64")
    .replace(/(.{64})/g, "$1\n")
    .trimEnd();
  return {
    cert: `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`,
    key: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
  };
}
