/**
 * The WebAssembly module behind `chainKeysInto` (request-keys.ts), emitted at load time by the
 * few lines of assembler below instead of being kept as an opaque byte blob.
 *
 * It exports `mem` (one page, grown by the caller) and
 * `chain(tok, n, bs, out, ph, pl)`: reads `n·bs` uint32 tokens (little-endian) at byte address
 * `tok`, and for each block k computes `h = FNV-64a(CBOR [parent, [bs tokens], null])` with the
 * CBOR bytes fed straight into the hash (never stored), `parent` being `ph·2^32 + pl` for k = 0
 * and key k−1 after; key k is stored as two uint32 words `[hi, lo]` at byte address `out + 8k`.
 * CBOR heads are the shortest form (request-keys.ts module doc): for a value v of major type m,
 * `v < 24` → one byte `m|v`; `< 2^8` → `m|24` and 1 byte; `< 2^16` → `m|25` and 2 bytes
 * big-endian; `< 2^32` → `m|26` and 4 bytes; a parent ≥ 2^32 → `0x1b` and 8 bytes.
 *
 * Native i64 multiplication makes FNV-64a about 8× the JS loop on uint32 halves, and emitting
 * the bytes into the hash directly saves the JS encoding pass: about half the time per block.
 */

// opcodes (WebAssembly core spec §5.4)
const BLOCK = 0x02;
const LOOP = 0x03;
const IF = 0x04;
const ELSE = 0x05;
const END = 0x0b;
const BR = 0x0c;
const BR_IF = 0x0d;
const VOID = 0x40;
const LOCAL_GET = 0x20;
const LOCAL_SET = 0x21;
const I32_LOAD = 0x28;
const I32_STORE = 0x36;
const I32_CONST = 0x41;
const I64_CONST = 0x42;
const I32_LT_U = 0x49;
const I32_GE_U = 0x4f;
const I64_EQZ = 0x50;
const I32_ADD = 0x6a;
const I32_AND = 0x71;
const I32_OR = 0x72;
const I32_SHL = 0x74;
const I32_SHR_U = 0x76;
const I64_MUL = 0x7e;
const I64_OR = 0x84;
const I64_XOR = 0x85;
const I64_SHL = 0x86;
const I64_SHR_U = 0x88;
const I32_WRAP_I64 = 0xa7;
const I64_EXTEND_I32_U = 0xad;
const I32 = 0x7f;
const I64 = 0x7e;

/** Signed LEB128 of a bigint (i64 constants; i32 ones pass through BigInt too). */
function sleb(v: bigint): number[] {
  const out: number[] = [];
  for (;;) {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    const b = n & 0x7f;
    n >>>= 7;
    out.push(n !== 0 ? b | 0x80 : b);
  } while (n !== 0);
  return out;
}

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;

/** The module's bytes (see module doc). */
export function chainWasmBytes(): Uint8Array {
  // params 0–5, then locals
  const TOK = 0;
  const N = 1;
  const BS = 2;
  const OUT = 3;
  const PH = 4;
  const PL = 5;
  const H = 6; // i64: running hash
  const P = 7; // i64: parent key
  const K = 8; // i32: block index
  const E = 9; // i32: end of the block's tokens, then the output address
  const V = 10; // i32: value being encoded
  const c: number[] = [];
  const get = (l: number) => c.push(LOCAL_GET, l);
  const set = (l: number) => c.push(LOCAL_SET, l);
  const i32 = (v: number) => c.push(I32_CONST, ...sleb(BigInt(v)));
  const i64 = (v: bigint) => c.push(I64_CONST, ...sleb(BigInt.asIntN(64, v)));
  /** h = (h ^ byte) · prime, the byte being the i32 left on the stack by `byte()` */
  const mix = (byte: () => void) => {
    get(H);
    byte();
    c.push(I64_EXTEND_I32_U, I64_XOR);
    i64(FNV_PRIME);
    c.push(I64_MUL);
    set(H);
  };
  /** byte `(v >>> shift) & 0xff` of local V */
  const vByte = (shift: number) => () => {
    get(V);
    if (shift > 0) {
      i32(shift);
      c.push(I32_SHR_U);
    }
    if (shift < 24) {
      i32(0xff);
      c.push(I32_AND);
    }
  };
  /** shortest CBOR head of major-type bits `m` and the uint32 in local V */
  const head = (m: number) => {
    const ifLess = (bound: number) => {
      get(V);
      i32(bound);
      c.push(I32_LT_U, IF, VOID);
    };
    ifLess(24);
    mix(() => {
      i32(m);
      get(V);
      c.push(I32_OR);
    });
    c.push(ELSE);
    ifLess(0x100);
    mix(() => i32(m | 24));
    mix(vByte(0));
    c.push(ELSE);
    ifLess(0x10000);
    mix(() => i32(m | 25));
    mix(vByte(8));
    mix(vByte(0));
    c.push(ELSE);
    mix(() => i32(m | 26));
    for (const s of [24, 16, 8, 0]) mix(vByte(s));
    c.push(END, END, END);
  };

  // p = ph << 32 | pl
  get(PH);
  c.push(I64_EXTEND_I32_U);
  i64(32n);
  c.push(I64_SHL);
  get(PL);
  c.push(I64_EXTEND_I32_U, I64_OR);
  set(P);
  c.push(BLOCK, VOID, LOOP, VOID); // for k in 0 .. n
  get(K);
  get(N);
  c.push(I32_GE_U, BR_IF, 1);
  i64(FNV_OFFSET);
  set(H);
  mix(() => i32(0x83)); // array(3)
  // parent: uint32 head when it fits, else 0x1b and 8 bytes big-endian
  get(P);
  i64(32n);
  c.push(I64_SHR_U, I64_EQZ, IF, VOID);
  get(P);
  c.push(I32_WRAP_I64);
  set(V);
  head(0x00);
  c.push(ELSE);
  mix(() => i32(0x1b));
  for (let s = 56; s >= 0; s -= 8) {
    mix(() => {
      get(P);
      i64(BigInt(s));
      c.push(I64_SHR_U, I32_WRAP_I64);
      i32(0xff);
      c.push(I32_AND);
    });
  }
  c.push(END);
  // token array head, then the tokens
  get(BS);
  set(V);
  head(0x80);
  get(TOK);
  get(BS);
  i32(2);
  c.push(I32_SHL, I32_ADD);
  set(E);
  c.push(BLOCK, VOID, LOOP, VOID);
  get(TOK);
  get(E);
  c.push(I32_GE_U, BR_IF, 1);
  get(TOK);
  c.push(I32_LOAD, 2, 0);
  set(V);
  head(0x00);
  get(TOK);
  i32(4);
  c.push(I32_ADD);
  set(TOK);
  c.push(BR, 0, END, END);
  mix(() => i32(0xf6)); // null
  get(H);
  set(P);
  // out + 8k ← [hi, lo]
  get(OUT);
  get(K);
  i32(3);
  c.push(I32_SHL, I32_ADD);
  set(E);
  get(E);
  get(H);
  i64(32n);
  c.push(I64_SHR_U, I32_WRAP_I64, I32_STORE, 2, 0);
  get(E);
  get(H);
  c.push(I32_WRAP_I64, I32_STORE, 2, 4);
  get(K);
  i32(1);
  c.push(I32_ADD);
  set(K);
  c.push(BR, 0, END, END, END);

  const body = [2, 2, I64, 3, I32, ...c]; // locals: 2 × i64, 3 × i32
  const section = (id: number, payload: number[]) => [id, ...uleb(payload.length), ...payload];
  const name = (s: string) => [s.length, ...Array.from(s, (ch) => ch.charCodeAt(0))];
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00], // magic, version 1
    ...section(1, [1, 0x60, 6, I32, I32, I32, I32, I32, I32, 0]), // type 0: (i32 × 6) → ()
    ...section(3, [1, 0]), // function 0 has type 0
    ...section(5, [1, 0x00, 1]), // one memory, min 1 page
    ...section(7, [2, ...name("mem"), 0x02, 0, ...name("chain"), 0x00, 0]), // exports
    ...section(10, [1, ...uleb(body.length), ...body]), // code
  ]);
}
