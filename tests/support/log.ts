// A pino logger that keeps its records in memory, so tests can assert on what was logged.
import { pino, type Logger } from 'pino';

export interface Captured {
  log: Logger;
  records: Array<Record<string, unknown> & { msg?: string; level: number }>;
  messages(): string[];
}

export function captureLog(): Captured {
  const records: Captured['records'] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line)) });
  return { log, records, messages: () => records.map((r) => String(r.msg ?? '')) };
}
