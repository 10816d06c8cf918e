// The structured log every part writes to: an object of fields, then a message. pino's
// Logger has this shape, so the composition roots pass theirs, and a test passes a capture.
export interface Log {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}
