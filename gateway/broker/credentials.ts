// Per-node MQTT credentials: a JSON file of salted scrypt hashes (RFC 7914), mode 0600,
// compared in constant time. The plain password is shown once, when the entry is made,
// and never stored.
import { randomBytes, scrypt as scryptCb, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { z } from 'zod';
import { idProblem } from '../../protocol/index.js';


// N = 2^14, r = 8, p = 1: the interactive-login parameters of RFC 7914 §2's guidance;
// about 16 MiB and tens of ms per check, acceptable for a connect and costly for a guesser.
const DEFAULT_KDF = { N: 16384, r: 8, p: 1, keyLen: 32 } as const;

const EntrySchema = z.object({
  kdf: z.literal('scrypt'),
  N: z.number().int().min(1024),
  r: z.number().int().min(1),
  p: z.number().int().min(1),
  salt: z.string().min(16),
  hash: z.string().min(16),
  createdAt: z.string().optional(),
});

export const CredentialsFileSchema = z.object({
  version: z.literal(1),
  // Node ids are topic levels and client ids; the protocol says which ones are valid.
  nodes: z.record(z.string().refine((id) => idProblem(id) === null, { error: (iss) => `node id ${idProblem(String(iss.input))}` }), EntrySchema),
});

export type CredentialEntry = z.infer<typeof EntrySchema>;
export type CredentialsFile = z.infer<typeof CredentialsFileSchema>;

function scrypt(password: string, salt: Buffer, keyLen: number, opts: ScryptOptions): Promise<Buffer> {
  // maxmem must cover 128·N·r bytes (RFC 7914 §5's V array) plus a margin.
  const maxmem = 256 * (opts.N ?? DEFAULT_KDF.N) * (opts.r ?? DEFAULT_KDF.r) + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scryptCb(password, salt, keyLen, { ...opts, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function makeEntry(password: string, now: Date = new Date()): Promise<CredentialEntry> {
  const salt = randomBytes(16);
  const { N, r, p, keyLen } = DEFAULT_KDF;
  const hash = await scrypt(password, salt, keyLen, { N, r, p });
  return { kdf: 'scrypt', N, r, p, salt: salt.toString('base64'), hash: hash.toString('base64'), createdAt: now.toISOString() };
}

export async function verifyPassword(entry: CredentialEntry, password: string): Promise<boolean> {
  const expected = Buffer.from(entry.hash, 'base64');
  const actual = await scrypt(password, Buffer.from(entry.salt, 'base64'), expected.length, { N: entry.N, r: entry.r, p: entry.p });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * Refuses a file of secrets that its group or others can read: they would learn what it
 * holds without needing the gateway's account.
 */
export function assertPrivateFile(path: string, holds: string): void {
  const mode = statSync(path).mode & 0o777;
  if (mode & 0o077) {
    throw new Error(`${path} has mode ${mode.toString(8)}; it holds ${holds}, so make it private: chmod 600 ${path}`);
  }
}

/** Reads and validates a credentials file; refuses one that others can read. */
export function loadCredentials(path: string): CredentialsFile {
  if (!existsSync(path)) {
    throw new Error(`credentials file ${path} does not exist; create it with: heliomesh gateway add-node NODE_ID --file ${path}`);
  }
  assertPrivateFile(path, 'password hashes');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`credentials file ${path} is not valid JSON (${(err as Error).message}); fix or recreate it with heliomesh gateway add-node`);
  }
  const parsed = CredentialsFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`credentials file ${path} is malformed: ${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}

function writePrivate(path: string, file: CredentialsFile): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Removes a node's entry, so its password no longer logs in anywhere; false if it had none. */
export function removeNode(path: string, nodeId: string): boolean {
  const file = loadCredentials(path);
  if (!file.nodes[nodeId]) return false;
  delete file.nodes[nodeId];
  writePrivate(path, file);
  return true;
}

/**
 * Adds a node with a fresh random password, written atomically with mode 0600; returns the
 * password, which exists nowhere else afterwards.
 */
export async function addNode(path: string, nodeId: string, opts: { replace?: boolean } = {}): Promise<string> {
  const problem = idProblem(nodeId);
  if (problem) throw new Error(`node id ${problem}`);
  const file: CredentialsFile = existsSync(path) ? loadCredentials(path) : { version: 1, nodes: {} };
  if (file.nodes[nodeId] && !opts.replace) {
    throw new Error(`node ${nodeId} already has credentials in ${path}; pass --replace to issue a new password`);
  }
  // 24 random bytes: 192 bits, far beyond guessing even at scrypt's cost per try.
  const password = randomBytes(24).toString('base64url');
  file.nodes[nodeId] = await makeEntry(password);
  writePrivate(path, file);
  return password;
}
